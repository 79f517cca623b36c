"""How fresh a response is, told twice: in ``extensions.freshness`` and in HTTP headers.

``Cache-Status`` (RFC 9211) says whether the cached reads were hits, misses, stale serves or
bypassed the cache; ``Age`` is how old the class statistics in the response are, and when they
are stale (marks wait for the next refresh, or the refresh is overdue) a second
``Cache-Status`` member says so with the reason.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from strawberry.types import ExecutionResult

from resolvers.context import Context
from resolvers.freshness import FreshnessReport
from services.cache import Source

CACHE_NAME = "rollcall"
STATISTICS_NAME = "rollcall-statistics"


def apply_freshness(result: ExecutionResult, context: Context) -> None:
    report = context.freshness
    if not report.used:
        return
    result.extensions = {**(result.extensions or {}), "freshness": _extension(report)}
    if isinstance(context.response, Response):
        headers = context.response.headers
        headers["cache-status"] = ", ".join(_cache_status(report))
        if report.statistics is not None:
            headers["age"] = str(int(report.statistics.age_seconds))


def _extension(report: FreshnessReport) -> dict[str, Any]:
    sources = report.sources
    body: dict[str, Any] = {
        "cache": {
            "hits": sources[Source.L1] + sources[Source.L2],
            "misses": sources[Source.DATABASE],
            "bypassed": sources[Source.BYPASS],
            "staleServes": report.stale_serves,
        }
    }
    if (statistics := report.statistics) is not None:
        body["statistics"] = {
            "lastCalculated": statistics.calculated_at.isoformat(),
            "ageSeconds": int(statistics.age_seconds),
            "stale": statistics.stale,
            "reason": statistics.reason,
        }
    return body


def _cache_status(report: FreshnessReport) -> list[str]:
    sources = report.sources
    if sources[Source.BYPASS]:
        members = [f"{CACHE_NAME}; fwd=bypass"]
    elif sources[Source.DATABASE]:
        members = [f"{CACHE_NAME}; fwd=miss; stored"]
    elif report.stale_serves:
        members = [f"{CACHE_NAME}; hit; fwd=stale"]
    else:
        members = [f"{CACHE_NAME}; hit"]
    if report.statistics is not None and report.statistics.stale:
        members.append(f'{STATISTICS_NAME}; fwd=stale; detail="{report.statistics.reason}"')
    return members
