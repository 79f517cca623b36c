"""Log records as one JSON object a line (production) or one readable line (development).

A request's identity — request id, tenant, user, operation names — lives in a ``RequestRecord``
held by a context variable for as long as the request (or websocket operation) runs; every
record logged meanwhile carries it, so an error deep in a service names the request it broke.
Structured fields of a record go in ``extra={"fields": {...}}``. Nothing here reads headers,
variables or bodies: tokens and passwords never reach a record unless a message names them.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

ACCESS_LOGGER = "rollcall.access"
# uvicorn's own access log repeats ours with less in it.
QUIET_LOGGERS = ("uvicorn.access",)


@dataclass
class RequestRecord:
    """Who asked what in one request or websocket operation; filled in as it is learnt."""

    request_id: str
    tenant_id: str | None = None
    user_id: str | None = None
    operations: list[str] = field(default_factory=list)
    # The first root field of each operation: a label with bounded values, for metrics.
    root_fields: list[str] = field(default_factory=list)

    def fields(self) -> dict[str, object]:
        found: dict[str, object] = {"requestId": self.request_id}
        if self.tenant_id is not None:
            found["tenantId"] = self.tenant_id
        if self.user_id is not None:
            found["userId"] = self.user_id
        if self.operations:
            found["operations"] = list(self.operations)
        return found


current_request: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar(
    "rollcall_request", default=None
)


class RequestContextFilter(logging.Filter):
    """Copies the current request's identity onto each record (as ``record.request``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request"):
            found = current_request.get()
            record.request = found.fields() if found is not None else {}
        return True


def _fields(record: logging.LogRecord) -> dict[str, object]:
    request: dict[str, object] = getattr(record, "request", None) or {}
    extra: dict[str, object] = getattr(record, "fields", None) or {}
    return {**request, **extra}


class JsonFormatter(logging.Formatter):
    """``{"timestamp", "level", "logger", "message", <request and record fields>, "error"}``."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            body["error"] = {
                "type": type(error).__name__,
                "message": str(error),
                "stack": "".join(traceback.format_exception(*record.exc_info)),
            }
        elif record.stack_info:
            body["stack"] = record.stack_info
        return orjson.dumps(body, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value…``, the stack below when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if not fields:
            return line
        head, _, stack = line.partition("\n")
        pairs = " ".join(
            f"{key}={','.join(map(str, value)) if isinstance(value, list) else value}"
            for key, value in fields.items()
        )
        return f"{head} [{pairs}]" + (f"\n{stack}" if stack else "")


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (as logging's last resort
    does), not to the stream of the moment it was made, which may be closed by then."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """StreamHandler sets it; the property always answers sys.stderr."""


def configure_logging(*, json: bool, level: int | str = logging.INFO) -> logging.Handler:
    """Our handler on the root logger (stderr), replacing one set up before; the handler."""
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, StderrHandler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
