"""The response cache at the GraphQL edge: which operations it may answer, and how.

Only queries whose every root field is one of the cached reads below may be answered from it;
mutations and subscriptions never are. Within those, what decides is what the operation read
(services/platform/recording.py): an answer is kept only when every read came through the
tagged cache, none was stale, the viewer's token was checked within the operation, and nothing
went wrong (no error at all). A field that reads the database directly (a student's name, say)
makes its answer uncacheable by itself: no list of uncacheable fields has to be kept true by
hand.

A hit counts against the rate limits the operation counted against, tells its freshness as the
operation would (the statistics' age and the pending marks read at the hit), and says in
``extensions.freshness.cache.response`` and ``Cache-Status`` that it was a response-cache hit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from graphql import FieldNode, GraphQLError, OperationType, parse
from strawberry.types import ExecutionResult

from graph.operations import chosen_operation, note_operation, operation_labels
from resolvers.context import Context
from resolvers.freshness import ResponseStatus
from services.auth import Viewer
from services.cached_reads import STATISTICS_PENDING
from services.platform.recording import Recording
from services.platform.settings import Settings
from services.response_cache import ResponseCache, StoredResponse, response_key

# The root fields made of cached reads alone (and ``__typename``, which reads nothing).
CACHEABLE_ROOT_FIELDS = frozenset(
    {
        "studentDashboard",
        "weeklyAttendance",
        "attendanceHistory",
        "studentRanking",
        "classStatistics",
        "classRankings",
        "__typename",
    }
)


@dataclass(frozen=True, slots=True)
class Plan:
    """What the edge knows of a document before running it."""

    cacheable: bool
    operation: str
    root: str
    # The operation run, by its own name: naming the only one or not is the same request.
    name: str | None = None


@lru_cache(maxsize=1024)
def plan(document: str, operation_name: str | None) -> Plan:
    """Whether ``operation_name`` of ``document`` is a query of cacheable root fields only
    (fragments at the root are not looked into: such a document simply runs)."""
    try:
        parsed = parse(document)
    except GraphQLError:
        return Plan(cacheable=False, operation="unknown", root="unknown")
    chosen = chosen_operation(parsed, operation_name)
    operation, root = operation_labels(parsed, operation_name)
    fields = [] if chosen is None else chosen.selection_set.selections
    cacheable = (
        chosen is not None
        and chosen.operation is OperationType.QUERY
        and all(
            isinstance(selection, FieldNode) and selection.name.value in CACHEABLE_ROOT_FIELDS
            for selection in fields
        )
        # ``{ __typename }`` alone reads nothing worth keeping: it costs less to run.
        and any(
            isinstance(selection, FieldNode) and selection.name.value != "__typename"
            for selection in fields
        )
    )
    name = chosen.name.value if chosen is not None and chosen.name is not None else None
    return Plan(cacheable=cacheable, operation=operation, root=root, name=name)


def schema_fingerprint(sdl: str, settings: Settings | None) -> str:
    """What an answer also depends on besides its key: the schema and the document limits
    (an answer kept under other limits must not outlive a deploy that tightened them)."""
    limits = (
        None
        if settings is None
        else (
            settings.query_max_depth,
            settings.query_max_aliases,
            settings.query_max_tokens,
            settings.query_max_cost,
            settings.introspection,
        )
    )
    return hashlib.sha256(orjson.dumps([sdl, limits])).hexdigest()


@dataclass(frozen=True, slots=True)
class Cacheable:
    """An operation the response cache may answer: the cache, its key and its plan."""

    responses: ResponseCache
    key: str
    plan: Plan
    viewer: Viewer


def cacheable(
    context: Context,
    *,
    fingerprint: str,
    document: str,
    operation_name: str | None,
    variables: dict[str, Any] | None,
) -> Cacheable | None:
    responses = context.responses
    if responses is None or not isinstance(viewer := context.viewer_or_error, Viewer):
        return None
    found = plan(document, operation_name)
    if not found.cacheable:
        return None
    key = response_key(
        fingerprint=fingerprint,
        document=document,
        operation_name=found.name,
        variables=variables,
        viewer=viewer,
    )
    if key is None:
        return None
    return Cacheable(responses=responses, key=key, plan=found, viewer=viewer)


async def serve(context: Context, operation: Cacheable) -> ExecutionResult | None:
    """The stored answer, counted against its rate limits; None to run the operation (no
    valid answer stored, or a limit refuses: running it tells how, as it always does)."""
    hit = await operation.responses.lookup(operation.viewer.tenant_id, operation.key)
    if hit is None or not await context.count_limits(hit.response.limits):
        return None
    context.viewer_confirmed = True  # the token's account was checked by the tags held
    note_operation(operation.plan.operation, operation.plan.root)
    context.freshness.replay(
        lookups=hit.response.lookups,
        statistics_calculated_at=hit.response.statistics_calculated_at,
        pending=hit.watched.get(STATISTICS_PENDING),
        now=context.now(),
        expires_in=hit.expires_in,
    )
    return ExecutionResult(data=orjson.loads(hit.response.data), errors=None)


async def keep(
    context: Context, operation: Cacheable, result: ExecutionResult, running: Recording
) -> None:
    """Keep ``result`` when it may be served again: no error, and every read recorded."""
    if result.errors or result.data is None:
        return
    statistics = context.freshness.statistics
    stored = await operation.responses.store(
        operation.viewer.tenant_id,
        operation.key,
        StoredResponse(
            data=orjson.dumps(result.data).decode(),
            limits=running.limits,
            lookups=context.freshness.lookups,
            statistics_calculated_at=None if statistics is None else statistics.calculated_at,
        ),
        running,
    )
    if stored:
        context.freshness.response = ResponseStatus.STORED
