"""The schema, composed from each domain's Query and Mutation fragments."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from graph.attendance import AttendanceMutation, AttendanceQuery
from graph.audit import AuditQuery
from graph.auth import AuthMutation, AuthQuery
from graph.certificates import CertificateMutation, CertificateQuery
from graph.dashboards import DashboardQuery
from graph.errors import format_error, log_unexpected
from graph.exports import ExportMutation, ExportQuery
from graph.freshness import apply_freshness
from graph.limits import query_limits
from graph.live import LiveSubscription
from graph.notifications import NotificationMutation, NotificationQuery
from graph.rate_limits import apply_rate_limits
from graph.school import SchoolQuery
from resolvers.context import Context
from services.errors import ServiceError
from services.persisted_queries import requested_hash
from services.settings import Settings

Query = merge_types(
    "Query",
    (
        AuthQuery,
        DashboardQuery,
        AttendanceQuery,
        SchoolQuery,
        NotificationQuery,
        CertificateQuery,
        ExportQuery,
        AuditQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (AuthMutation, AttendanceMutation, NotificationMutation, CertificateMutation, ExportMutation),
)
Subscription = merge_types("Subscription", (LiveSubscription,))
HTTP_OPERATION_TYPES = (OperationType.QUERY, OperationType.MUTATION)


class Schema(strawberry.Schema):
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
        is kept once it has parsed and validated.
        """
        persisted = (operation_extensions or {}).get("persistedQuery")
        digest = sent = None
        if persisted is not None and isinstance(context_value, Context):
            try:
                digest = requested_hash(persisted)
                sent, query = query, await context_value.persisted.resolve(digest, query)
            except ServiceError as error:
                refused = ExecutionResult(
                    data=None, errors=[GraphQLError(error.message, original_error=error)]
                )
                _format_errors(refused, context_value)
                return refused
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
            if digest is not None and sent is not None and document_ok(result):
                await context_value.persisted.keep(digest, sent)
            apply_freshness(result, context_value)
            apply_rate_limits(result, context_value)
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
        their code, request id and timestamp, as over HTTP."""
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
    limits = query_limits(settings) if settings is not None else []
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            lambda: ParserCache(maxsize=512),
            *limits,
            lambda: ValidationCache(maxsize=512),
        ],
        config=StrawberryConfig(
            disable_field_suggestions=settings is not None and settings.production,
            batching_config=(
                {"max_operations": settings.query_max_batch} if settings is not None else None
            ),
        ),
    )


schema = create_schema()
