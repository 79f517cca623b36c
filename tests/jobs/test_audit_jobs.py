"""The audit log's cron jobs, run as the worker runs them (arq context, recorded last run)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from jobs.audit import archive_audit_logs, ensure_audit_partitions
from jobs.platform import recorded
from jobs.worker import WorkerSettings
from services.platform.storage import LocalStore
from services.queue import CRON_LAST_RUN


def test_both_run_daily_once_per_slot_and_partitions_at_start_too():
    jobs = {job.name: job for job in WorkerSettings.cron_jobs}
    ensure, archive = jobs["cron:ensure_audit_partitions"], jobs["cron:archive_audit_logs"]
    assert (ensure.hour, ensure.minute, ensure.unique, ensure.run_at_startup) == (2, 10, True, True)
    assert (archive.hour, archive.minute, archive.unique) == (3, 20, True)
    assert archive.timeout_s is not None and archive.timeout_s > 3600


async def test_the_jobs_run_from_a_worker_context(settings, session_factory, redis, tmp_path):
    ctx = {
        "settings": dataclasses.replace(settings, audit_archive_min_rows=10**12),
        "session_factory": session_factory,
        "store": LocalStore(tmp_path),
        "redis": redis,
    }
    # the migration made this month and the next two; the job adds the third one ahead
    now = datetime.now(UTC)
    third = f"audit_logs_{now.year + (now.month + 2) // 12}_{(now.month + 2) % 12 + 1:02d}"
    assert set(await recorded(ensure_audit_partitions, timeout_seconds=30)(ctx)) <= {third}
    assert await recorded(ensure_audit_partitions, timeout_seconds=30)(ctx) == []
    summary = await recorded(archive_audit_logs, timeout_seconds=30)(ctx)
    assert summary["archived"] == [] and "at most" in summary["skipped"]
    last_runs = await redis.hgetall(CRON_LAST_RUN)
    assert {b"ensure_audit_partitions", b"archive_audit_logs"} <= set(last_runs)
