"""Typed service errors. The GraphQL edge turns each into ``extensions.code`` (and ``field``)."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_REQUEST = "BAD_REQUEST"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    TOO_MANY_OPERATIONS = "TOO_MANY_OPERATIONS"
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    PERSISTED_QUERY_NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class ServiceError(Exception):
    """An expected failure whose message is safe to show to the client."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(ServiceError):
    """Bad input; ``field`` names the argument path that failed (``marks[2].studentId``)."""

    code = ErrorCode.VALIDATION_ERROR

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Unauthenticated(ServiceError):
    code = ErrorCode.UNAUTHENTICATED


class Forbidden(ServiceError):
    code = ErrorCode.FORBIDDEN


class NotFound(ServiceError):
    code = ErrorCode.NOT_FOUND


class TooManyOperations(ServiceError):
    """More operations at once than one live connection may run."""

    code = ErrorCode.TOO_MANY_OPERATIONS
