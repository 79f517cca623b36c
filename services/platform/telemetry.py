"""Prometheus metrics: what each part of Rollcall counts, and the probes that count it.

The metric objects are module constants, as prometheus-client intends: the code that sees an
event (a cache lookup, a refused login, a query) counts it where it happens, with no recorder
to thread through every constructor. With ``PROMETHEUS_MULTIPROC_DIR`` set (before the process
starts) prometheus-client keeps the values in files of that directory, one set per process, and
``/metrics`` adds up every process's files; gauges of one process (connections, pool, memory)
use the ``live*`` modes, so a process that stopped stops counting once its files are removed
(``mark_process_dead``). Values that are the same whoever is asked (queue depths, dead
letters, Redis up) are read when scraped, not stored: see ``ScrapeValues``.

Redis has no event hooks in redis-py: ``TimedRedis`` times each command sent through it (the
cache's client, which the cache, live connections and persisted queries share). arq's queue
pool and the rate limiter's connections are not timed; their failures still show as Redis
down and as the cache's errors.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from services.platform.resources import memory_limit_bytes

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# A slow query's text is cut here: enough to know it, never its parameters.
STATEMENT_LOG_CHARS = 500
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5)
STATEMENT_KINDS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"})
_QUERY_STARTS = "rollcall_query_starts"

slow_query_logger = logging.getLogger("rollcall.db")

HTTP_REQUEST_DURATION = Histogram(
    "rollcall_http_request_duration_seconds",
    "HTTP requests by GraphQL operation (the root field asked, 'batch' for a batch) or path, "
    "and status class",
    ["operation", "status"],
    buckets=LATENCY_BUCKETS,
)
WEBSOCKET_OPERATIONS = Counter(
    "rollcall_websocket_operations_total",
    "Operations run over websockets, by root field and how they ended",
    ["operation", "outcome"],
)
GRAPHQL_ERRORS = Counter(
    "rollcall_graphql_errors_total", "GraphQL errors sent to clients, by extensions.code", ["code"]
)
CACHE_LOOKUPS = Counter(
    "rollcall_cache_lookups_total",
    "Cached reads by kind and result: l1_hit, l2_hit, miss (computed), bypass (Redis down)",
    ["kind", "result"],
)
CACHE_STALE_SERVES = Counter(
    "rollcall_cache_stale_serves_total",
    "Hits served past their soft TTL (refreshed in the background)",
    ["kind"],
)
CACHE_REDIS_ERRORS = Counter(
    "rollcall_cache_redis_errors_total", "Cache operations Redis failed (the breaker counts them)"
)
CACHE_SERVER_CHANGES = Counter(
    "rollcall_cache_server_changes_total",
    "Times the cache's Redis answered with another run_id (restart, failover): L1 dropped",
)
DB_QUERY_DURATION = Histogram(
    "rollcall_db_query_duration_seconds",
    "SQL statements, by their first keyword",
    ["statement"],
    buckets=FAST_BUCKETS,
)
DB_RETRIES = Counter(
    "rollcall_db_retries_total",
    "Units of work tried again after a transient connection error (reads, idempotent writes)",
)
DB_BREAKER_REFUSALS = Counter(
    "rollcall_db_breaker_refusals_total",
    "New database connections refused without trying: the database's circuit breaker is open",
)
DB_SLOW_QUERIES = Counter(
    "rollcall_db_slow_queries_total",
    "SQL statements slower than ROLLCALL_SLOW_QUERY_MS, by their first keyword",
    ["statement"],
)
DB_POOL_IN_USE = Gauge(
    "rollcall_db_pool_connections_in_use",
    "Pooled database connections checked out now",
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "rollcall_db_pool_max_connections",
    "The most connections the API's pools may open (ROLLCALL_DB_POOL_MAX per process)",
    multiprocess_mode="livesum",
)
REDIS_COMMAND_DURATION = Histogram(
    "rollcall_redis_command_duration_seconds",
    "Commands sent through the cache's Redis client, by command",
    ["command"],
    buckets=FAST_BUCKETS,
)
REDIS_ERRORS = Counter(
    "rollcall_redis_errors_total",
    "Redis connections lost or timed out: commands of the cache's client, and the live "
    "updates' subscription",
    ["error"],
)
WEBSOCKET_CONNECTIONS = Gauge(
    "rollcall_websocket_connections",
    "Live (websocket) connections open now",
    multiprocess_mode="livesum",
)
LOGIN_FAILURES = Counter(
    "rollcall_login_failures_total",
    "Failed logins by reason (wrong password, unknown or inactive user, unknown tenant)",
    ["reason"],
)
RATE_LIMIT_DENIALS = Counter(
    "rollcall_rate_limit_denials_total", "Operations refused by a rate limit", ["limit"]
)
RESIDENT_MEMORY = Gauge(
    "rollcall_process_resident_memory_bytes",
    "Resident memory of the API processes",
    multiprocess_mode="livesum",
)
MEMORY_LIMIT = Gauge(
    "rollcall_memory_limit_bytes",
    "Memory the processes may use: the cgroup's limit, else the machine's memory",
    multiprocess_mode="livemax",
)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


# --- PostgreSQL ------------------------------------------------------------------------------


def statement_kind(statement: str) -> str:
    first = statement.lstrip().split(None, 1)
    kind = first[0].upper() if first else ""
    return kind if kind in STATEMENT_KINDS else "OTHER"


def instrument_engine(
    engine: AsyncEngine, *, slow_query_ms: int, pool_max: int | None = None
) -> None:
    """Time every statement of ``engine``; log and count those slower than ``slow_query_ms``.
    Given ``pool_max`` (the API's engine, not the worker's), follow its pool too: connections
    checked out, and its capacity."""
    sync_engine = engine.sync_engine
    slow_seconds = slow_query_ms / 1000

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault(_QUERY_STARTS, []).append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        starts = conn.info.get(_QUERY_STARTS)
        if not starts:
            return
        seconds = time.perf_counter() - starts.pop()
        kind = statement_kind(statement)
        DB_QUERY_DURATION.labels(kind).observe(seconds)
        if seconds >= slow_seconds:
            DB_SLOW_QUERIES.labels(kind).inc()
            text = " ".join(statement.split())
            slow_query_logger.warning(
                "slow query (%.0f ms): %s",
                seconds * 1000,
                text[:STATEMENT_LOG_CHARS],
                extra={
                    "fields": {
                        "durationMs": round(seconds * 1000, 1),
                        "statement": text[:STATEMENT_LOG_CHARS],
                    }
                },
            )

    def failed(context: Any) -> None:
        connection = context.connection
        if connection is not None and connection.info.get(_QUERY_STARTS):
            connection.info[_QUERY_STARTS].pop()

    def checked_out(*args: Any) -> None:
        DB_POOL_IN_USE.inc()

    def checked_in(*args: Any) -> None:
        DB_POOL_IN_USE.dec()

    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
    event.listen(sync_engine, "handle_error", failed)
    if pool_max is not None:
        event.listen(sync_engine.pool, "checkout", checked_out)
        event.listen(sync_engine.pool, "checkin", checked_in)
        DB_POOL_MAX.set(pool_max)


# --- Redis -----------------------------------------------------------------------------------


class TimedRedis(Redis):
    """A Redis client whose every command is timed (by command name) and whose lost or timed
    out connections are counted."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        command = str(args[0]).upper() if args else "UNKNOWN"
        started = time.perf_counter()
        try:
            return await super().execute_command(*args, **options)
        except RedisTimeoutError:
            REDIS_ERRORS.labels("timeout").inc()
            raise
        except (RedisConnectionError, OSError):
            REDIS_ERRORS.labels("connection").inc()
            raise
        finally:
            REDIS_COMMAND_DURATION.labels(command).observe(time.perf_counter() - started)


# --- Memory ----------------------------------------------------------------------------------


def resident_memory_bytes() -> int | None:
    """This process's resident set (Linux), else None."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def sample_process() -> None:
    """Set this process's resident memory (called every few seconds and at each scrape)."""
    resident = resident_memory_bytes()
    if resident is not None:
        RESIDENT_MEMORY.set(resident)


def record_memory_limit() -> None:
    """Set the memory limit gauge: the cgroup's, else the machine's (fixed while we run)."""
    MEMORY_LIMIT.set(memory_limit_bytes() or psutil.virtual_memory().total)


# --- Read at scrape time ---------------------------------------------------------------------


@dataclass
class ScrapeValues:
    """State shared by every process, read when ``/metrics`` is asked: the same whichever
    process answers, so never stored per process. A source that did not answer in time is
    left out (and ``up`` says 0 for it)."""

    up: dict[str, bool] = field(default_factory=dict)
    queues: Mapping[str, Mapping[str, int]] | None = None
    outbox: int | None = None

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "rollcall_dependency_up",
            "Whether a dependency answered the scrape's probe (1) or not (0)",
            labels=["dependency"],
        )
        for name, answered in sorted(self.up.items()):
            up.add_metric([name], 1 if answered else 0)
        yield up
        if self.queues is not None:
            depth = GaugeMetricFamily(
                "rollcall_queue_jobs",
                "Jobs in each queue: waiting (queued or deferred) and running",
                labels=["queue", "state"],
            )
            dead = GaugeMetricFamily(
                "rollcall_queue_dead_letters",
                "Jobs that failed every try and were not retried yet",
                labels=["queue"],
            )
            for queue, figures in sorted(self.queues.items()):
                name = queue.rsplit(":", 1)[-1]
                depth.add_metric([name, "waiting"], figures["waiting"])
                depth.add_metric([name, "running"], figures["running"])
                dead.add_metric([name], figures["deadLetters"])
            yield depth
            yield dead
        if self.outbox is not None:
            yield GaugeMetricFamily(
                "rollcall_queue_outbox_jobs",
                "Jobs kept in PostgreSQL while Redis refused them",
                value=self.outbox,
            )
