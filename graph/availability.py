"""A request refused whole because the database is down (its circuit breaker open) or the
process is busy answers HTTP 503 with ``Retry-After``, so load balancers and clients back off."""

from __future__ import annotations

from starlette.responses import Response
from strawberry.types import ExecutionResult

from graph.rate_limits import refused_whole
from resolvers.context import Context
from services.errors import ErrorCode

RETRY_AFTER_SECONDS = 5


def apply_availability(result: ExecutionResult, context: Context) -> None:
    """After ``apply_rate_limits`` (which counts the request's operations)."""
    context.unavailable_operations += refused_whole(result, ErrorCode.SERVICE_UNAVAILABLE)
    if not isinstance(context.response, Response):
        return
    headers = context.response.headers
    if context.unavailable_operations == context.rate_limits.operations:
        context.response.status_code = 503
        headers["retry-after"] = str(RETRY_AFTER_SECONDS)
    elif context.response.status_code == 503:  # an earlier operation of the batch was refused
        context.response.status_code = 200
        del headers["retry-after"]
