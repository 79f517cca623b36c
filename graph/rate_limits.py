"""Refusals told over HTTP: ``RateLimit-*`` headers; and a request refused whole (every
operation in it refused for the same reason, nothing answered) answers that reason's status
with ``Retry-After``: 429 for its rate limit, 503 while the database is down or the process is
busy, so that load balancers and clients back off."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from strawberry.types import ExecutionResult

from resolvers.context import Context
from services.platform.errors import ErrorCode

REFUSED_STATUS = {ErrorCode.RATE_LIMIT_EXCEEDED: 429, ErrorCode.SERVICE_UNAVAILABLE: 503}
UNAVAILABLE_RETRY_AFTER_SECONDS = 5


def apply_refusals(result: ExecutionResult, context: Context) -> None:
    report = context.rate_limits
    # Every operation counts, refused or not: one that was answered was not refused.
    report.operations += 1
    for code in REFUSED_STATUS:
        report.refused[code] += refused_whole(result, code)
    if not isinstance(context.response, Response):
        return
    headers = context.response.headers
    quota = report.tightest
    if quota is not None:
        headers["ratelimit-limit"] = str(quota.limit)
        headers["ratelimit-remaining"] = str(quota.remaining)
        headers["ratelimit-reset"] = str(quota.reset_after)
    retry_after = {
        ErrorCode.RATE_LIMIT_EXCEEDED: quota.reset_after if quota is not None else None,
        ErrorCode.SERVICE_UNAVAILABLE: UNAVAILABLE_RETRY_AFTER_SECONDS,
    }
    for code, status in REFUSED_STATUS.items():
        wait = retry_after[code]
        if report.refused[code] == report.operations and wait is not None:
            context.response.status_code = status
            headers["retry-after"] = str(wait)
            return
    # An earlier operation of the batch was refused, this one was not.
    if context.response.status_code in REFUSED_STATUS.values():
        context.response.status_code = 200
        del headers["retry-after"]


def refused_whole(result: ExecutionResult, code: ErrorCode) -> bool:
    """Only errors of ``code``, and nothing answered."""
    errors = result.errors or []
    data: Any = result.data
    return (
        bool(errors)
        and all((error.extensions or {}).get("code") == code.value for error in errors)
        and (not data or all(value is None for value in data.values()))
    )
