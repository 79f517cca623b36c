"""Access logs, ``/metrics`` and the per-request identity every log line carries.

One access record per HTTP request (``rollcall.access``, INFO; probes and scrapes at DEBUG)
and one per websocket operation: request id, tenant, user, operation names, latency, status.
The request's latency also goes to ``rollcall_http_request_duration_seconds``, labelled by the
operation's root field rather than the client's ``operationName``: clients choose names freely,
and a label that takes any value would grow Prometheus without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph.edge.health import answers, queue_figures
from graph.tracing import start_tracing
from services.auth import Viewer
from services.platform.db import database_answers
from services.platform.logs import ACCESS_LOGGER, RequestRecord, current_request
from services.platform.settings import Settings
from services.platform.telemetry import (
    HTTP_REQUEST_DURATION,
    MULTIPROC_DIR_VARIABLE,
    WEBSOCKET_OPERATIONS,
    ScrapeValues,
    instrument_engine,
    record_memory_limit,
    sample_process,
    status_class,
)

access_logger = logging.getLogger(ACCESS_LOGGER)
SCRAPE_TIMEOUT_SECONDS = 1.0
MEMORY_SAMPLE_SECONDS = 5.0
# Paths answered at DEBUG: probes and scrapes would drown the requests that matter.
QUIET_PATHS = frozenset({"/health", "/health/ready", "/health/queues", "/metrics"})
KNOWN_PATHS = QUIET_PATHS | {"/graphql"}
GRAPHQL_PATH = "/graphql"


def note_viewer(viewer: object) -> None:
    """Name the current request's tenant and user (an authenticated ``viewer`` only)."""
    record = current_request.get()
    if record is not None and isinstance(viewer, Viewer):
        record.tenant_id = str(viewer.tenant_id)
        record.user_id = str(viewer.user_id)


def _path_label(path: str) -> str:
    if path in KNOWN_PATHS:
        return path
    if path.startswith("/files/"):
        return "/files"
    if path in {"/", "/sw.js"} or path.startswith("/web/"):
        return "page"
    return "other"


def operation_label(record: RequestRecord, path: str) -> str:
    if path != GRAPHQL_PATH:
        return _path_label(path)
    if len(record.root_fields) > 1:
        return "batch"
    return record.root_fields[0] if record.root_fields else "none"


class AccessLogMiddleware:
    """The access record and latency of each HTTP request; for websockets, a record that the
    connection's log lines (and its operations' records) start from."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        record = RequestRecord(request_id=scope.get("state", {}).get("request_id", "unknown"))
        token = current_request.set(record)
        if scope["type"] == "websocket":
            try:
                await self.app(scope, receive, send)
            finally:
                current_request.reset(token)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            seconds = time.perf_counter() - started
            path = scope.get("path", "")
            HTTP_REQUEST_DURATION.labels(
                operation_label(record, path), status_class(status)
            ).observe(seconds)
            log_access(record, seconds, status=status, method=scope.get("method", ""), path=path)
            current_request.reset(token)


def log_access(
    record: RequestRecord, seconds: float, *, status: int | str, method: str, path: str
) -> None:
    level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
    if not access_logger.isEnabledFor(level):
        return
    latency_ms = round(seconds * 1000, 2)
    access_logger.log(
        level,
        "%s %s %s %.1f ms %s",
        method,
        path,
        status,
        latency_ms,
        ",".join(record.operations) or "-",
        extra={
            "request": {},
            "fields": {
                **record.fields(),
                "method": method,
                "path": path,
                "status": status,
                "latencyMs": latency_ms,
            },
        },
    )


@contextlib.asynccontextmanager
async def operation_record(connection: RequestRecord | None) -> AsyncIterator[RequestRecord]:
    """A record for one websocket operation (its connection's identity, its own operation),
    current while it runs; logged with its outcome when it ends."""
    record = RequestRecord(
        request_id=connection.request_id if connection else "unknown",
        tenant_id=connection.tenant_id if connection else None,
        user_id=connection.user_id if connection else None,
    )
    token = current_request.set(record)
    started = time.perf_counter()
    outcome = "error"
    try:
        yield record
        outcome = "complete"
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    finally:
        current_request.reset(token)
        operation = record.root_fields[0] if record.root_fields else "none"
        WEBSOCKET_OPERATIONS.labels(operation, outcome).inc()
        log_access(
            record, time.perf_counter() - started, status=outcome, method="WS", path=GRAPHQL_PATH
        )


# --- /metrics --------------------------------------------------------------------------------


class _Joined:
    """Several collectors read as one registry."""

    def __init__(self, *sources: Collector) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Any]:
        for source in self.sources:
            yield from source.collect()


async def scrape_values(state: Any) -> ScrapeValues:
    """Probes and queue figures, each given at most SCRAPE_TIMEOUT_SECONDS (concurrently)."""
    values = ScrapeValues()

    async def probe(name: str, check: Any) -> None:
        values.up[name] = await answers(check, SCRAPE_TIMEOUT_SECONDS)

    async def queues() -> None:
        with contextlib.suppress(Exception):
            found = await asyncio.wait_for(queue_figures(state), SCRAPE_TIMEOUT_SECONDS)
            values.queues, values.outbox = found["queues"], found["outbox"]

    await asyncio.gather(
        probe("database", database_answers(state.engine)),
        probe("redis", state.redis.ping()),
        probe("cache_redis", state.cache.redis.ping()),
        queues(),
    )
    return values


async def metrics(request: Request) -> Response:
    """Prometheus text format: this process's metrics (every process's, in multiprocess
    mode) and what is read at scrape time."""
    values = await scrape_values(request.state)
    sample_process()
    base: Collector = (
        MultiProcessCollector(None) if os.environ.get(MULTIPROC_DIR_VARIABLE) else REGISTRY
    )
    body = generate_latest(_Joined(base, values))  # type: ignore[arg-type]
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class Telemetry:
    """What the app runs for observability while it lives: engine instrumentation, the memory
    sampler and, when configured, tracing."""

    def __init__(self, *, engine: AsyncEngine, settings: Settings) -> None:
        instrument_engine(
            engine, slow_query_ms=settings.slow_query_ms, pool_max=settings.db_pool_max
        )
        self._stop_tracing = start_tracing(settings, engine=engine)
        record_memory_limit()
        sample_process()
        self._sampler = asyncio.create_task(self._sample(), name="telemetry-sampler")

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(MEMORY_SAMPLE_SECONDS)
            sample_process()

    async def aclose(self) -> None:
        self._sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sampler
        if self._stop_tracing is not None:
            self._stop_tracing()
        if os.environ.get(MULTIPROC_DIR_VARIABLE):
            # This process's live gauges (connections, pool, memory) stop counting.
            mark_process_dead(os.getpid())
