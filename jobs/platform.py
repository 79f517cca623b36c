"""What every Rollcall job gets: a timeout, up to 3 tries with exponential backoff, and a dead
letter holding its payload when the last try fails; workers that lock each job for its own
timeout; and a NORMAL-queue worker that yields to URGENT work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.cron import CronJob
from arq.jobs import deserialize_job
from arq.utils import timestamp_ms
from arq.worker import Function, Retry, Worker, func

from services.queue import CRON_LAST_RUN, record_dead_letter

MAX_TRIES = 3
Job = Callable[..., Awaitable[Any]]
# Called as ``give_up(ctx, error, *args, **kwargs)`` once the last try has failed.
GiveUp = Callable[..., Awaitable[None]]


def backoff_seconds(job_try: int, base: float) -> float:
    """1, 2, 4 … times ``base`` after the first, second, third … failure."""
    return base * 2 ** (job_try - 1)


class WorkerStopped(RuntimeError):
    """A job's last try never finished: its worker stopped while running it."""


def durable(
    coroutine: Job, *, timeout_seconds: float, on_give_up: GiveUp | None = None
) -> Function:
    """``coroutine`` as an arq function with Rollcall's timeout, retry and dead-letter policy.

    The timeout is enforced here (arq's own fails a job for good on timeout): a job that outlives
    it counts as a failed try and is retried like any other failure. After the dead letter,
    ``on_give_up`` records the failure where the job's own data lives (an export turns FAILED).

    A worker that stops during the last try (killed, or shut down) leaves the job to be handed
    out once more; arq would then drop it ("max retries exceeded") without a word, so it is let
    through one try further and given up here, dead letter and all, without running again.
    """
    name = coroutine.__name__

    async def give_up(ctx: dict[str, Any], error: Exception, args: Any, kwargs: Any) -> None:
        async with ctx["session_factory"]() as session:
            await record_dead_letter(
                session,
                queue=ctx["queue"],
                job_id=ctx["job_id"],
                function=name,
                args=args,
                kwargs=kwargs,
                tries=min(ctx["job_try"], MAX_TRIES),
                error=f"{type(error).__name__}: {error}",
            )
        if on_give_up is not None:
            await on_give_up(ctx, error, *args, **kwargs)

    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if ctx["job_try"] > MAX_TRIES:
            stopped = WorkerStopped(f"the worker stopped during try {MAX_TRIES} of {MAX_TRIES}")
            await give_up(ctx, stopped, args, kwargs)
            return None
        try:
            async with asyncio.timeout(timeout_seconds):
                return await coroutine(ctx, *args, **kwargs)
        except Exception as error:
            tries = ctx["job_try"]
            if tries < MAX_TRIES:
                raise Retry(defer=backoff_seconds(tries, ctx["retry_backoff_seconds"])) from error
            await give_up(ctx, error, args, kwargs)
            raise

    run.__name__ = run.__qualname__ = name
    # arq's timeout only backs ours up; arq's try limit is one past ours (see above)
    return func(run, name=name, max_tries=MAX_TRIES + 1, timeout=timeout_seconds + 5)


def recorded(coroutine: Job, *, timeout_seconds: float) -> Job:
    """A cron job that notes when it last finished (for /health/queues); the next run retries."""

    async def run(ctx: dict[str, Any]) -> Any:
        async with asyncio.timeout(timeout_seconds):
            result = await coroutine(ctx)
        await ctx["redis"].hset(CRON_LAST_RUN, coroutine.__name__, datetime.now(UTC).isoformat())
        return result

    run.__name__ = run.__qualname__ = coroutine.__name__
    return run


# What arq adds to a job's timeout for the lock it holds while the job runs.
LOCK_MARGIN_SECONDS = 10


class JobLockWorker(Worker):
    """Locks each job it runs for that job's own timeout (plus a margin), not for its
    longest function's: the lock is what keeps a job a stopped worker was running from being
    run again, and an e-mail or a scan cut short must not wait out the audit archival's three
    hours."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Where every function's own lock is arq's (the URGENT worker's 30 s jobs), nothing to
        # shorten: no extra round trips per job.
        self._relock = any(
            self._lock_seconds(function) != self.in_progress_timeout_s
            for function in self.functions.values()
        )

    def _lock_seconds(self, function: Function | CronJob) -> float:
        return (function.timeout_s or self.job_timeout_s) + LOCK_MARGIN_SECONDS

    async def run_job(self, job_id: str, score: int) -> None:
        if not self._relock:
            await super().run_job(job_id, score)
            return
        payload = await self.pool.get(job_key_prefix + job_id)
        if payload is not None:
            name = deserialize_job(payload, deserializer=self.job_deserializer).function
            function = self.functions.get(name)
            if function is not None:
                seconds = self._lock_seconds(function)
                await self.pool.pexpire(in_progress_key_prefix + job_id, int(seconds * 1000))
        await super().run_job(job_id, score)


class PreferringWorker(JobLockWorker):
    """Takes no job from its own queue while a job of ``urgent_queue`` is ready to run.

    Run beside a plain worker of the urgent queue: urgent work is always drained first, and
    normal work proceeds whenever none is waiting.
    """

    def __init__(self, *args: Any, urgent_queue: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.urgent_queue = urgent_queue

    async def _poll_iteration(self) -> None:
        ready = await self.pool.zcount(self.urgent_queue, float("-inf"), timestamp_ms())
        self.allow_pick_jobs = ready == 0
        await super()._poll_iteration()
