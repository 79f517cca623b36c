"""The schema, composed from each domain's Query and Mutation fragments."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from graph import response_cache
from graph.administration import AdministrationMutation, AdministrationQuery
from graph.attendance import AttendanceMutation, AttendanceQuery
from graph.audit import AuditQuery
from graph.auth import AuthMutation, AuthQuery, ConfirmViewer
from graph.certificates import CertificateMutation, CertificateQuery
from graph.dashboards import DashboardQuery
from graph.errors import format_error, log_unexpected
from graph.exports import ExportMutation, ExportQuery
from graph.freshness import apply_freshness
from graph.input_rules import SCALAR_OVERRIDES
from graph.limits import validation
from graph.live import LiveSubscription
from graph.notifications import NotificationMutation, NotificationQuery
from graph.operations import OperationNames
from graph.rate_limits import apply_refusals
from graph.school import SchoolQuery
from graph.tracing import tracing_extensions
from resolvers.context import Context
from resolvers.documents import resolve_document
from services.platform import recording
from services.platform.errors import ServiceError
from services.platform.settings import Settings

Query = merge_types(
    "Query",
    (
        AuthQuery,
        DashboardQuery,
        AttendanceQuery,
        SchoolQuery,
        AdministrationQuery,
        NotificationQuery,
        CertificateQuery,
        ExportQuery,
        AuditQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        AuthMutation,
        AttendanceMutation,
        AdministrationMutation,
        NotificationMutation,
        CertificateMutation,
        ExportMutation,
    ),
)
Subscription = merge_types("Subscription", (LiveSubscription,))
HTTP_OPERATION_TYPES = (OperationType.QUERY, OperationType.MUTATION)


class Schema(strawberry.Schema):
    # What a cached answer depends on besides its key (graph/response_cache.py).
    fingerprint: str = ""

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Run the operation, then give every error its code, request id and timestamp.

        Done here rather than in an extension because a parse error raised by ParserCache
        escapes the extensions' operation hook. Subscriptions run over the websocket only:
        over HTTP they are refused before anything runs. An operation may name its document
        by hash (Apollo's persisted queries, over POST or GET); a document sent with its hash
        is kept once it has parsed and validated. Callers restricted to trusted documents
        (partner tokens, or everyone as configured) are refused anything unregistered. Once
        the document is known and allowed, a query the response cache may answer is served
        from it when a valid answer is kept, and otherwise runs recording its reads, so that
        its answer can be kept (graph/response_cache.py).
        """
        keep_as = None
        cached = None
        if isinstance(context_value, Context):
            try:
                document = await resolve_document(
                    query, (operation_extensions or {}).get("persistedQuery"), context_value
                )
            except ServiceError as error:
                refused = ExecutionResult(data=None, errors=[_error(error)])
                _format_errors(refused, context_value)
                apply_refusals(refused, context_value)
                return refused
            query, keep_as = document.text, document.keep_as
            if query is not None:
                cached = response_cache.cacheable(
                    context_value,
                    fingerprint=self.fingerprint,
                    document=query,
                    operation_name=operation_name,
                    variables=variable_values,
                )
            if cached is not None and (hit := await response_cache.serve(context_value, cached)):
                if keep_as is not None and query is not None:
                    await context_value.persisted.keep(keep_as, query)
                apply_freshness(hit, context_value)
                apply_refusals(hit, context_value)
                return hit
        # The recording starts before the token's account is checked: a kept answer must
        # depend on that check's tag too. An account checked before (an earlier operation of a
        # batch) is not, so then nothing is kept.
        keepable = cached is not None and not context_value.viewer_confirmed
        with recording.recorded() if keepable else contextlib.nullcontext() as running:
            result = await super().execute(
                query,
                variable_values=variable_values,
                context_value=context_value,
                root_value=root_value,
                operation_name=operation_name,
                allowed_operation_types=[
                    kind
                    for kind in allowed_operation_types or HTTP_OPERATION_TYPES
                    if kind is not OperationType.SUBSCRIPTION
                ],
                operation_extensions=operation_extensions,
            )
        _format_errors(result, context_value)
        if isinstance(context_value, Context):
            if keep_as is not None and query is not None and document_ok(result):
                await context_value.persisted.keep(keep_as, query)
            if cached is not None and running is not None:
                await response_cache.keep(context_value, cached, result, running)
            apply_freshness(result, context_value)
            apply_refusals(result, context_value)
        return result

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> Any:
        """Operations over the websocket (subscriptions mostly): each result's errors get
        their code, request id and timestamp, as over HTTP; trusted documents apply as there."""
        if isinstance(context_value, Context):
            try:
                document = await resolve_document(
                    query, (operation_extensions or {}).get("persistedQuery"), context_value
                )
            except ServiceError as error:
                return _formatted(_refusal(error), context_value)
            query = document.text
        results = await super().stream(
            query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            operation_extensions=operation_extensions,
            allowed_operation_types=allowed_operation_types,
        )
        return _formatted(results, context_value)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log only what nobody expected; client mistakes are answered, not logged as errors."""
        log_unexpected(errors, execution_context.context if execution_context else None)


def _error(error: ServiceError) -> GraphQLError:
    return GraphQLError(error.message, original_error=error)


async def _refusal(error: ServiceError) -> AsyncGenerator[PreExecutionError, None]:
    """An operation refused before it ran, as a stream: the websocket answers it with an
    ``error`` message."""
    yield PreExecutionError(data=None, errors=[_error(error)])


def document_ok(result: ExecutionResult) -> bool:
    """The document parsed and validated (whatever became of its execution)."""
    return not any(
        (error.extensions or {}).get("code")
        in {"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED"}
        for error in result.errors or ()
    )


def _format_errors(result: Any, context_value: Any) -> None:
    errors = getattr(result, "errors", None)
    if not errors:
        return
    request_id = getattr(context_value, "request_id", "unknown")
    settings = getattr(context_value, "settings", None)
    production = settings.production if settings is not None else True
    result.errors = [
        format_error(error, request_id=request_id, production=production) for error in errors
    ]


async def _formatted(
    results: AsyncGenerator[Any, None], context_value: Any
) -> AsyncGenerator[Any, None]:
    async with aclosing(results):
        async for result in results:
            _format_errors(result, context_value)
            yield result


def create_schema(settings: Settings | None = None) -> Schema:
    """The schema; with ``settings``, as served: query limits enforced, batches capped, and in
    production no field suggestions ("did you mean …") that would map the schema."""
    served = Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            lambda: ParserCache(maxsize=512),
            OperationNames,
            *validation(settings),
            ConfirmViewer,
            *tracing_extensions(settings),
        ],
        scalar_overrides=SCALAR_OVERRIDES,
        config=StrawberryConfig(
            disable_field_suggestions=settings is not None and settings.production,
            batching_config=(
                {"max_operations": settings.query_max_batch} if settings is not None else None
            ),
        ),
    )
    served.fingerprint = response_cache.schema_fingerprint(served.as_str(), settings)
    return served


schema = create_schema()
