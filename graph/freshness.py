"""How fresh a response is, told twice: in ``extensions.freshness`` and in HTTP headers.

``Cache-Status`` (RFC 9211) says whether the cached reads were hits, misses, stale serves or
bypassed the cache; ``Age`` is how old the class statistics in the response are, and when they
are stale (marks wait for the next refresh, or the refresh is overdue) a member says so with
the reason. The response cache, the cache nearest the client, comes last: ``hit`` with the
seconds its answer has to live when it answered (then no read ran), ``fwd=miss; stored`` when
it kept the answer.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from strawberry.types import ExecutionResult

from resolvers.context import Context
from resolvers.freshness import FreshnessReport, ResponseStatus
from services.platform.cache import Source

CACHE_NAME = "rollcall"
STATISTICS_NAME = "rollcall-statistics"
RESPONSE_NAME = "rollcall-response"


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
    cache: dict[str, Any] = {
        "hits": sources[Source.L1] + sources[Source.L2] + report.replayed_lookups,
        "misses": sources[Source.DATABASE],
        "bypassed": sources[Source.BYPASS],
        "staleServes": report.stale_serves,
    }
    if report.response is not None:
        cache["response"] = report.response.value
    body: dict[str, Any] = {"cache": cache}
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
    if report.response is ResponseStatus.HIT:
        members = []
    elif sources[Source.BYPASS]:
        members = [f"{CACHE_NAME}; fwd=bypass"]
    elif sources[Source.DATABASE]:
        members = [f"{CACHE_NAME}; fwd=miss; stored"]
    elif report.stale_serves:
        members = [f"{CACHE_NAME}; hit; fwd=stale"]
    else:
        members = [f"{CACHE_NAME}; hit"]
    if report.statistics is not None and report.statistics.stale:
        members.append(f'{STATISTICS_NAME}; fwd=stale; detail="{report.statistics.reason}"')
    if report.response is ResponseStatus.HIT:
        members.append(f"{RESPONSE_NAME}; hit; ttl={int(report.response_ttl or 0)}")
    elif report.response is ResponseStatus.STORED:
        members.append(f"{RESPONSE_NAME}; fwd=miss; stored")
    return members
