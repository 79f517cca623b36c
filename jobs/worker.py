"""The arq worker's whole wiring: functions, cron jobs, and the resources jobs share."""

from __future__ import annotations

import os
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker, get_kwargs

from jobs.notifications import check_all_thresholds, check_thresholds
from jobs.statistics import refresh_statistics
from services.db import create_engine, create_session_factory
from services.settings import Settings

STATISTICS_REFRESH_MINUTES = set(range(0, 60, 10))


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.setdefault("settings", Settings.from_env(os.environ))
    assert settings.database_url is not None, "the worker needs a database"
    engine = create_engine(settings.database_url, pool_min=2, pool_max=5)
    ctx["engine"] = engine
    ctx["session_factory"] = create_session_factory(engine)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["engine"].dispose()


class WorkerSettings:
    functions = [refresh_statistics, check_thresholds]
    cron_jobs = [
        cron(check_all_thresholds, name="cron:check_all_thresholds", minute=0, unique=True),
        cron(
            refresh_statistics,
            name="cron:refresh_statistics",
            minute=STATISTICS_REFRESH_MINUTES,
            unique=True,
            run_at_startup=True,
        ),
    ]
    on_startup = startup
    on_shutdown = shutdown
    max_tries = 3
    job_timeout = 120


def create_worker(
    settings: Settings, *, handle_signals: bool = True, burst: bool = False
) -> Worker:
    """A worker bound to ``settings`` (``ctx["settings"]``), for the CLI and in-process use."""
    assert settings.redis_url is not None, "the worker needs Redis"
    return Worker(
        **get_kwargs(WorkerSettings),
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        ctx={"settings": settings},
        handle_signals=handle_signals,
        burst=burst,
    )
