"""The worker's whole wiring: job functions, cron jobs, the two queues and shared resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from arq import cron
from arq.connections import create_pool
from arq.constants import in_progress_key_prefix
from arq.cron import CronJob
from arq.worker import Function, Worker
from redis.exceptions import RedisError

from jobs.administration import import_failed, import_roster, send_password_reset
from jobs.audit import archive_audit_logs, ensure_audit_partitions
from jobs.cache import invalidate_cache
from jobs.certificates import scan_certificate, sweep_orphan_objects
from jobs.exports import EXPORT_TIMEOUT_SECONDS, build_export, expire_old_exports, export_failed
from jobs.notifications import (
    check_all_thresholds,
    check_thresholds,
    requeue_stale_emails,
    send_notification_email,
)
from jobs.outbox import drain_outbox
from jobs.platform import Job, JobLockWorker, PreferringWorker, durable, recorded
from jobs.statistics import refresh_statistics
from services.cached_reads import create_cache
from services.downloads import Links
from services.platform.db import create_engine, create_session_factory
from services.platform.redis_urls import queue_settings
from services.platform.resources import ResourceMonitor, SystemUsage, Usage
from services.platform.scanning import create_scanner
from services.platform.settings import Settings
from services.platform.storage import create_store
from services.platform.telemetry import instrument_engine
from services.queue import Queue

CRON_TIMEOUT_SECONDS = 300
RESTART_BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
logger = logging.getLogger(__name__)
# A first archival may take many months at once: ~15 s per million rows (benchmarks/audit.py).
ARCHIVE_TIMEOUT_SECONDS = 3 * 3600
# How long a cron tick's result is kept. Every worker queues every tick, however late (arq's
# loop waits for a free job slot before it looks at the clock, then catches up tick by tick),
# and arq refuses a tick only while its job or its result exists: without the result, a worker
# late for a tick another had run queued it again, and it ran again once arq's hold on it
# lapsed (60 s). A day outlasts any wait for a slot (jobs time out within 3 h) and is the
# daily jobs' own period.
CRON_RESULT_SECONDS = 24 * 3600


def scheduled(
    job: Job,
    *,
    timeout_seconds: float = CRON_TIMEOUT_SECONDS,
    hour: int | None = None,
    minute: int | set[int] | None = None,
    second: int = 0,
    run_at_startup: bool = False,
    timeout: float | None = None,
) -> CronJob:
    """``job`` as a unique cron job named ``cron:<job>`` that notes when it last finished:
    each tick runs once, whichever workers queue it and however late."""
    return cron(
        recorded(job, timeout_seconds=timeout_seconds),
        name=f"cron:{job.__name__}",
        hour=hour,
        minute=minute,
        second=second,
        run_at_startup=run_at_startup,
        unique=True,
        timeout=timeout,
        keep_result=CRON_RESULT_SECONDS,
    )


class WorkerSettings:
    """Every job function and cron job, and which of them the URGENT worker runs."""

    # What services.queue enqueues on URGENT: short jobs that never wait behind exports,
    # scans or the archival.
    urgent_functions: Sequence[Function] = (
        durable(check_thresholds, timeout_seconds=30),
        durable(send_notification_email, timeout_seconds=30),
        durable(invalidate_cache, timeout_seconds=30),
        durable(send_password_reset, timeout_seconds=30),
    )
    functions: Sequence[Function] = (
        *urgent_functions,
        durable(refresh_statistics, timeout_seconds=120),
        durable(scan_certificate, timeout_seconds=120),
        durable(build_export, timeout_seconds=EXPORT_TIMEOUT_SECONDS, on_give_up=export_failed),
        durable(import_roster, timeout_seconds=300, on_give_up=import_failed),
    )
    cron_jobs: Sequence[CronJob] = (
        scheduled(refresh_statistics, minute=set(range(0, 60, 10)), run_at_startup=True),
        scheduled(check_all_thresholds, minute=5, run_at_startup=True),
        scheduled(sweep_orphan_objects, minute=45),
        scheduled(expire_old_exports, minute=50),
        scheduled(ensure_audit_partitions, hour=2, minute=10, run_at_startup=True),
        scheduled(
            archive_audit_logs,
            timeout_seconds=ARCHIVE_TIMEOUT_SECONDS,
            hour=3,
            minute=20,
            # arq's own timeout (300 s unless told) only backs up recorded's
            timeout=ARCHIVE_TIMEOUT_SECONDS + 60,
        ),
        scheduled(requeue_stale_emails, second=45),
        scheduled(drain_outbox, second=30, run_at_startup=True),
    )
    max_jobs = 10
    # arq waits this long between polls when idle: it bounds how soon an alert job starts
    # (benchmarks/jobs.py: mark -> notification p50 ~270 ms at 0.5 s, ~60 ms at 0.05 s).
    urgent_poll_delay = 0.05
    normal_poll_delay = 0.5


@contextlib.asynccontextmanager
async def shared_context(
    settings: Settings,
    *,
    retry_backoff_seconds: float = 1.0,
    usage: Callable[[], Usage] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """What every job finds in ``ctx`` besides arq's own keys; closed when the block ends.
    ``usage`` samples CPU and memory (the machine's unless given: tests give their own)."""
    assert settings.database_url is not None, "the worker needs a database"
    # Jobs may legitimately run long statements (an export's cursor, the statistics refresh,
    # audit archival): they get the job statement timeout, not the API's.
    engine = create_engine(
        settings.database_url,
        pool_max=WorkerSettings.max_jobs * 2,
        statement_timeout_ms=settings.db_job_statement_timeout_ms,
        pooler=settings.database_pooler,
    )
    instrument_engine(engine, slow_query_ms=settings.slow_query_ms)
    session_factory = create_session_factory(engine, pooler=settings.database_pooler)
    cache = create_cache(settings, session_factory=session_factory)
    try:
        yield {
            "settings": settings,
            "session_factory": session_factory,
            "cache": cache,
            "store": create_store(settings.storage_url),
            "links": Links(secret=settings.jwt_secret),
            "scanner": create_scanner(
                clamd_url=settings.clamd_url, deny_sha256=settings.scan_deny_sha256
            ),
            "retry_backoff_seconds": retry_backoff_seconds,
            "resources": ResourceMonitor(
                cpu_percent=settings.degrade_cpu_percent,
                memory_percent=settings.degrade_memory_percent,
                sample=usage or SystemUsage(),
            ),
        }
    finally:
        await cache.aclose()
        await cache.redis.aclose()
        await engine.dispose()


def create_workers(
    settings: Settings,
    shared: dict[str, Any],
    *,
    functions: Sequence[Function] | None = None,
    cron_jobs: Sequence[CronJob] = WorkerSettings.cron_jobs,
    burst: bool = False,
) -> list[Worker]:
    """An URGENT worker and a NORMAL one that yields to it; cron jobs run on NORMAL. Given
    ``functions`` (tests, benchmarks), both workers run all of them; else each its own."""
    assert settings.redis_url is not None, "the worker needs Redis"
    urgent = WorkerSettings.urgent_functions if functions is None else functions
    common: dict[str, Any] = {
        "redis_settings": queue_settings(settings.redis_url),
        "handle_signals": False,
        "burst": burst,
        "max_jobs": WorkerSettings.max_jobs,
    }
    return [
        JobLockWorker(
            functions=list(urgent),
            queue_name=Queue.URGENT.value,
            ctx={**shared, "queue": Queue.URGENT.value},
            poll_delay=WorkerSettings.urgent_poll_delay,
            **common,
        ),
        PreferringWorker(
            functions=list(WorkerSettings.functions if functions is None else functions),
            queue_name=Queue.NORMAL.value,
            ctx={**shared, "queue": Queue.NORMAL.value},
            poll_delay=WorkerSettings.normal_poll_delay,
            cron_jobs=list(cron_jobs),
            urgent_queue=Queue.URGENT.value,
            **common,
        ),
    ]


@dataclass
class RestartBackoff:
    """How long to wait before starting stopped workers again: longer after each stop in a
    row, and from the first wait again once workers had run longer than the longest wait (the
    outage they stopped for was over), so an outage months later is not met with the last."""

    delays: Sequence[float] = RESTART_BACKOFF_SECONDS
    stops: int = 0

    def after(self, ran_seconds: float) -> float:
        """The wait after workers that ran ``ran_seconds`` stopped."""
        if ran_seconds > max(self.delays):
            self.stops = 0
        self.stops += 1
        return self.delays[min(self.stops, len(self.delays)) - 1]


async def supervise_workers(
    settings: Settings,
    shared: dict[str, Any],
    *,
    backoff_seconds: Sequence[float] = RESTART_BACKOFF_SECONDS,
    functions: Sequence[Function] | None = None,
) -> None:
    """Run the workers (of ``functions``, as ``create_workers``) until cancelled. When Redis
    drops them (arq's loop stops on a lost connection), wait and start new ones: jobs wait in
    Redis, or in the outbox, meanwhile.

    The jobs they were running are cancelled as they stop, and their locks (arq's in-progress
    keys, which Redis could not be told to drop; a promoted replica has them too) are released
    once Redis answers again: they run again at once, not after their lock time (45 s for an
    alert check)."""
    backoff = RestartBackoff(backoff_seconds)
    stranded: set[str] = set()
    while True:
        workers = create_workers(settings, shared, functions=functions)
        started = time.monotonic()
        try:
            if stranded:
                await release_locks(settings, stranded)
                stranded.clear()
            await run_workers(workers)
            return
        except (RedisError, OSError, TimeoutError) as error:
            stranded |= {job_id for worker in workers for job_id in worker.tasks}
            delay = backoff.after(time.monotonic() - started)
            logger.warning("job workers stopped (%r); starting again in %g s", error, delay)
            await asyncio.sleep(delay)


async def release_locks(settings: Settings, job_ids: Collection[str]) -> None:
    """Drop the in-progress keys of ``job_ids``, jobs this process's stopped workers ran."""
    assert settings.redis_url is not None
    redis = await create_pool(queue_settings(settings.redis_url))
    try:
        await redis.delete(*(in_progress_key_prefix + job_id for job_id in job_ids))
    finally:
        await redis.aclose()


async def run_workers(workers: Sequence[Worker]) -> None:
    """Run until every worker stops (burst) or the task is cancelled; always close them."""
    try:
        await asyncio.gather(*(worker.main() for worker in workers))
    finally:
        for worker in workers:
            await worker.close()
