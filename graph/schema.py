"""The schema, composed from each domain's Query and Mutation fragments."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from graph.attendance import AttendanceMutation, AttendanceQuery
from graph.auth import AuthMutation, AuthQuery
from graph.dashboards import DashboardQuery
from graph.errors import ErrorFormatting, log_unexpected
from graph.school import SchoolQuery

Query = merge_types("Query", (AuthQuery, DashboardQuery, AttendanceQuery, SchoolQuery))
Mutation = merge_types("Mutation", (AuthMutation, AttendanceMutation))


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log only what nobody expected; client mistakes are answered, not logged as errors."""
        log_unexpected(errors, execution_context.context if execution_context else None)


def create_schema(**overrides: Any) -> Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        extensions=[
            ErrorFormatting,
            lambda: ParserCache(maxsize=512),
            lambda: ValidationCache(maxsize=512),
        ],
        **overrides,
    )


schema = create_schema()
