"""Rate limits told over HTTP: ``RateLimit-*`` headers, and 429 when a request was refused
whole (every operation in it refused for its rate limit)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from strawberry.types import ExecutionResult

from resolvers.context import Context
from services.errors import ErrorCode


def apply_rate_limits(result: ExecutionResult, context: Context) -> None:
    report = context.rate_limits
    # Every operation counts, limited or not: one that met no limit was not refused.
    report.operations += 1
    report.refused_operations += refused_whole(result)
    quota = report.tightest
    if quota is None or not isinstance(context.response, Response):
        return
    headers = context.response.headers
    headers["ratelimit-limit"] = str(quota.limit)
    headers["ratelimit-remaining"] = str(quota.remaining)
    headers["ratelimit-reset"] = str(quota.reset_after)
    if report.refused_operations == report.operations:
        context.response.status_code = 429
        headers["retry-after"] = str(quota.reset_after)
    elif context.response.status_code == 429:  # an earlier operation of the batch was refused
        context.response.status_code = 200
        del headers["retry-after"]


def refused_whole(result: ExecutionResult, code: ErrorCode = ErrorCode.RATE_LIMIT_EXCEEDED) -> bool:
    """Only errors of ``code`` (rate limits unless told), and nothing answered."""
    errors = result.errors or []
    data: Any = result.data
    return (
        bool(errors)
        and all((error.extensions or {}).get("code") == code.value for error in errors)
        and (not data or all(value is None for value in data.values()))
    )
