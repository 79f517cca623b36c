"""Every GraphQL error leaves with ``extensions.code``, ``requestId`` and ``timestamp``.

Service errors keep their message and code (and ``field``); the database down or too slow (a
connection lost, a statement timeout) is SERVICE_UNAVAILABLE; anything unexpected is logged
with its context and, in production, reaches the client only as INTERNAL_ERROR.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from graphql import GraphQLError
from graphql.error import GraphQLSyntaxError

from graph.operations import request_fields
from services.platform.db import unavailable
from services.platform.errors import ErrorCode, Invalid, ServiceError
from services.platform.telemetry import GRAPHQL_ERRORS
from services.rate_limits import RateLimited

logger = logging.getLogger("rollcall.graphql")
_VARIABLE = re.compile(
    r"^Variable '\$(?P<name>\w+)'(?: has invalid value at \.(?P<path>[\w.\[\]]+))?"
)
INTERNAL_MESSAGE = "Internal server error."
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def is_unexpected(error: GraphQLError) -> bool:
    """Neither a service error nor a problem with the GraphQL document itself."""
    original = error.original_error
    return original is not None and not isinstance(original, ServiceError | GraphQLError)


def log_unexpected(errors: list[GraphQLError], context: object) -> None:
    """Each unexpected error with its stack, the field it broke and the request's identity
    (request id, tenant, user, operations)."""
    for error in errors:
        if is_unexpected(error):
            path = ".".join(str(part) for part in error.path or ()) or "operation"
            logger.error(
                "unexpected error in %s",
                path,
                exc_info=error.original_error,
                extra={"request": {}, "fields": {**request_fields(context), "field": path}},
            )


def format_error(error: GraphQLError, *, request_id: str, production: bool) -> GraphQLError:
    original = error.original_error
    message = error.message
    extensions: dict[str, object] = {}
    if isinstance(original, ServiceError):
        code = original.code.value
        message = original.message
        if isinstance(original, Invalid):
            extensions["field"] = original.field
        if isinstance(original, RateLimited):
            extensions["retryAfter"] = original.retry_after
    elif original is not None and (down := unavailable(original)) is not None:
        code = down.code.value
        message = down.message
    elif is_unexpected(error):
        code = ErrorCode.INTERNAL_ERROR.value
        if production:
            message = INTERNAL_MESSAGE
    elif isinstance(error, GraphQLSyntaxError) or isinstance(original, GraphQLSyntaxError):
        code = "GRAPHQL_PARSE_FAILED"
    elif match := _VARIABLE.match(error.message):
        code = ErrorCode.VALIDATION_ERROR.value
        extensions["field"] = match["path"] or match["name"]
    else:
        code = "GRAPHQL_VALIDATION_FAILED"
        if production:
            # Suggestions name fields, arguments and values the client did not ask for.
            message = _SUGGESTION.sub("", message)
    extensions.update(code=code, requestId=request_id, timestamp=datetime.now(UTC).isoformat())
    GRAPHQL_ERRORS.labels(code).inc()
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions={**(error.extensions or {}), **extensions},
    )
