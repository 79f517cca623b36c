"""Many replicas (issue 23, docs/scaling.md step 1): three API processes and two workers on one
PostgreSQL and one Redis, as a deployment runs them behind a load balancer.

- marks sent round robin are answered by every process, and every subscriber on every process
  receives every event of them exactly once, whichever process took the mark;
- a cron tick runs once however many workers schedule it, also when one of them reaches the
  tick late (its loop held up: here, stopped with SIGSTOP across the tick);
- a rate limit counts one caller's reads on every process together.

The workers' clock is shifted by less than a minute (``TZ``, which arq's cron reads) so that
their every-minute ticks fall a few seconds after they start instead of up to a minute later:
the ticks are real ones of the real schedule, taken by arq as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import job_key_prefix, result_key_prefix
from prometheus_client.parser import text_string_to_metric_families

from jobs.worker import WorkerSettings
from rollcall.live_client import LiveClient
from rollcall.processes import ChildProcess, ServerProcess, running_server, running_worker
from services.models import Notification, NotificationType, Student
from services.platform.settings import Settings
from services.queue import CHECK_THRESHOLDS, Queue
from tests.factories import Factory, School, process_env
from tests.graph.test_live import mark as mark_through

WAIT_SECONDS = 30.0  # for anything a loaded 2-core machine may be slow to do
DASHBOARD_LIMIT = 5
# The two every-minute cron jobs and the second of the minute they run at (jobs/worker.py).
OUTBOX_SECOND, STALE_EMAILS_SECOND = 30, 45
# How far ahead of the fixture's start the first drain_outbox tick falls: time for the
# workers to start; a later start waits for the next minute's tick.
TICK_LEAD_SECONDS = 20

ATTENDANCE = """
subscription Attendance($classroomId: ID) {
  attendanceUpdated(classroomId: $classroomId) { recordId studentId status period }
}"""
# Every scalar field: two pushes that differ in nothing the product compares look different.
DASHBOARD = """
subscription {
  dashboardUpdated {
    studentId totalClasses presentDays absentDays sickDays leaveDays attendanceRate
    classAverage ranking classSize percentile trend standing lastUpdated statisticsCalculatedAt
  }
}"""
NOTIFICATIONS = "subscription { notificationReceived { id type } }"
READ_DASHBOARD = "{ studentDashboard { totalClasses } }"


@dataclass(frozen=True)
class Deployment:
    servers: tuple[ServerProcess, ...]
    workers: tuple[ChildProcess, ...]
    first_tick: float  # when the workers' first drain_outbox tick falls (Unix seconds)


def shifted_clock(tick_at: float, second: int) -> str:
    """A ``TZ`` whose local time reads ``second`` past a minute at ``tick_at``."""
    offset = (second - math.ceil(tick_at)) % 60
    return f"RCL-00:00:{offset:02d}"


@pytest.fixture(scope="module")
async def deployment(settings: Settings) -> AsyncIterator[Deployment]:
    assert settings.redis_url is not None
    async with aioredis.Redis.from_url(settings.redis_url) as redis:
        await redis.flushdb()  # no job left by earlier tests for these workers
    first_tick = math.ceil(time.time() + TICK_LEAD_SECONDS)
    env = process_env(
        settings,
        ROLLCALL_RATE_LIMITS=f"dashboard={DASHBOARD_LIMIT}/60s",
        ROLLCALL_DB_POOL_MAX="10",
        TZ=shifted_clock(first_tick, OUTBOX_SECOND),
    )
    async with contextlib.AsyncExitStack() as stack:
        workers = [await stack.enter_async_context(running_worker(env)) for _ in range(2)]
        servers = await asyncio.gather(
            *(stack.enter_async_context(running_server(env)) for _ in range(3))
        )
        yield Deployment(servers=tuple(servers), workers=tuple(workers), first_tick=first_tick)


async def until(condition: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"not within {within:.0f} s: {what}"
        await asyncio.sleep(0.05)


# --- cron -------------------------------------------------------------------------------------


def runs(workers: Sequence[ChildProcess], job: str, sign: str = "→") -> int:
    """How many runs of cron job ``job`` the workers started (arq logs ``→ cron:<job>()``) or,
    with ``sign="←"``, finished."""
    return sum(w.log_path.read_text(errors="replace").count(f"{sign} cron:{job}") for w in workers)


def tick_id(job: str, second: float) -> str:
    """arq's job id for a unique cron job's run in ``second``: one id a tick, whichever
    worker queues it (arq runs a tick at its ``microsecond`` past the second)."""
    [cron_job] = [c for c in WorkerSettings.cron_jobs if c.name == f"cron:{job}"]
    return f"cron:{job}:{int(second) * 1000 + cron_job.microsecond // 1000}"


async def test_a_cron_tick_runs_once_though_both_workers_schedule_it(
    deployment: Deployment, settings: Settings
):
    workers = deployment.workers
    late = workers[1]

    async def finished(job: str, count: int) -> bool:
        return runs(workers, job, "←") >= count

    # drain_outbox also runs once for each worker's start (under an id of each worker's own,
    # run by either): once both runs are done, both workers' cron loops are running.
    await until(
        lambda: finished("drain_outbox", 2),
        "the workers' cron loops running:\n" + "\n".join(w.log_tail() for w in workers),
        within=60,
    )
    tick = deployment.first_tick
    while tick - time.time() < 3:  # arq queues a tick up to 1 s ahead: stop before that
        tick += 60
    outbox, stale_emails = runs(workers, "drain_outbox"), runs(workers, "requeue_stale_emails")
    late_outbox = runs([late], "drain_outbox")
    # One worker is held up across the drain_outbox tick (as by ten long jobs: arq's loop
    # waits for a free slot before it looks at the clock): the other runs the tick, and the
    # late one reaches it only afterwards.
    os.kill(late.pid, signal.SIGSTOP)
    try:
        await until(
            lambda: finished("drain_outbox", outbox + 1),
            "the drain_outbox tick's run",
            within=tick - time.time() + WAIT_SECONDS,
        )
    finally:
        os.kill(late.pid, signal.SIGCONT)
    # Both are awake for the requeue_stale_emails tick, 15 s later. The late one caught up on
    # the drain_outbox tick as soon as it woke (it was overdue): that was before this tick.
    await until(
        lambda: finished("requeue_stale_emails", stale_emails + 1),
        "the requeue_stale_emails tick's run",
        within=tick + STALE_EMAILS_SECOND - OUTBOX_SECOND - time.time() + WAIT_SECONDS,
    )
    assert runs(workers, "drain_outbox") == outbox + 1
    assert runs([late], "drain_outbox") == late_outbox
    assert runs(workers, "requeue_stale_emails") == stale_emails + 1
    # and the late worker's catch-up queued nothing to run that tick again (as it did while
    # cron results were not kept: a second run 60 s later, when arq's hold on the tick lapsed)
    outbox_id = tick_id("drain_outbox", tick)
    assert settings.redis_url is not None
    async with aioredis.Redis.from_url(settings.redis_url) as redis:
        assert await redis.exists(job_key_prefix + outbox_id) == 0
        assert await redis.zscore(Queue.NORMAL.value, outbox_id) is None
        assert await redis.exists(result_key_prefix + outbox_id) == 1


# --- marks and live events ---------------------------------------------------------------------


@dataclass
class Watcher:
    """One subscription on one process, and what it received."""

    client: LiveClient
    operation: str
    received: list[dict[str, Any]] = field(default_factory=list)

    async def take(self, key: str) -> dict[str, Any]:
        payload = await self.client.next(self.operation, within=WAIT_SECONDS)
        assert "errors" not in payload, payload
        event: dict[str, Any] = payload["data"][key]
        self.received.append(event)
        return event


@contextlib.asynccontextmanager
async def live(server: ServerProcess, token: str) -> AsyncIterator[LiveClient]:
    async with LiveClient.connect(server.ws_url) as client:
        await client.init(token, within=WAIT_SECONDS)
        yield client


async def listening(server: ServerProcess, expected: int) -> bool:
    """Whether ``server`` holds ``expected`` live listeners (its own report)."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=WAIT_SECONDS) as http:
        return bool((await http.get("/health/ready")).json()["live"]["listeners"] == expected)


async def mark(server: ServerProcess, school: School, period: int) -> dict[str, str]:
    """Every student of the class ABSENT yesterday at ``period``, through ``server``; the
    records' ids by student id."""
    body = await mark_through(server, school, [(s.id, "ABSENT") for s in school.students], period)
    return {r["studentId"]: r["id"] for r in body["data"]["markAttendance"]["records"]}


async def marks_answered(server: ServerProcess) -> float:
    """markAttendance requests ``server`` answered with success (its own metrics)."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=WAIT_SECONDS) as http:
        text = (await http.get("/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "rollcall_http_request_duration_seconds_count"
        and sample.labels == {"operation": "markAttendance", "status": "2xx"}
    )


async def checked(pool: ArqRedis, expected: int) -> bool:
    """Whether ``expected`` threshold checks (the jobs that write alerts) have finished."""
    results = await pool.all_job_results()
    return sum(result.function == CHECK_THRESHOLDS for result in results) >= expected


async def test_every_subscriber_on_every_process_receives_every_event_once(
    deployment: Deployment, factory: Factory, settings: Settings
):
    servers = deployment.servers
    school = await factory.school(students=3, periods_per_day=12)
    rounds = 2 * len(servers)
    before = [await marks_answered(server) for server in servers]
    assert settings.redis_url is not None
    async with contextlib.AsyncExitStack() as stack:
        pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
        stack.push_async_callback(pool.aclose)
        # On every process: the teacher watching the class, each student their own marks,
        # dashboard and notifications.
        classes: list[Watcher] = []
        own_marks: dict[str, list[Watcher]] = {}
        dashboards: dict[str, list[Watcher]] = {}
        notifications: dict[str, list[Watcher]] = {}
        for server in servers:
            teacher = await stack.enter_async_context(
                live(server, school.token(school.teachers[0]))
            )
            operation = await teacher.subscribe(
                ATTENDANCE, {"classroomId": str(school.classrooms[0].id)}
            )
            classes.append(Watcher(teacher, operation))
            for student in school.students:
                client = await stack.enter_async_context(
                    live(server, school.student_token(student))
                )
                key = str(student.id)
                for watchers, query in (
                    (own_marks, ATTENDANCE),
                    (dashboards, DASHBOARD),
                    (notifications, NOTIFICATIONS),
                ):
                    operation = await client.subscribe(query)
                    watchers.setdefault(key, []).append(Watcher(client, operation))
        per_process = 1 + 3 * len(school.students)
        for server in servers:
            await until(
                lambda server=server: listening(server, per_process),
                f"{per_process} listeners on {server.base_url}",
                within=WAIT_SECONDS,
            )
        for watcher in _all(dashboards):
            assert (await watcher.take("dashboardUpdated"))["totalClasses"] == 0

        # Marks round robin; each round's events reach everyone before the next round.
        for number in range(rounds + 1):
            server = servers[number % len(servers)]
            records = await mark(server, school, period=number + 1)
            if number == rounds:
                # The last round is a barrier: nothing before it is still on its way. Wait
                # first for the alert checks of every earlier mark (the workers publish the
                # notifications), so that their events are ahead of this round's too.
                await until(
                    lambda: checked(pool, rounds), f"{rounds} threshold checks", WAIT_SECONDS
                )
            for watcher in classes:
                events = [await watcher.take("attendanceUpdated") for _ in records]
                assert sorted(e["recordId"] for e in events) == sorted(records.values())
            for key, record in records.items():
                for watcher in own_marks[key]:
                    event = await watcher.take("attendanceUpdated")
                    assert (event["recordId"], event["period"]) == (record, number + 1)
                for watcher in dashboards[key]:
                    while (await watcher.take("dashboardUpdated"))["totalClasses"] < number + 1:
                        pass  # a statistics refresh's push: checked below

        # Every process answered marks: the round robin reached them all.
        after = [await marks_answered(server) for server in servers]
        assert [a - b for a, b in zip(after, before, strict=True)] == [3, 2, 2]
        # Dashboards: every mark pushed once, in order; no push repeats the one before it.
        for watcher in _all(dashboards):
            totals = [push["totalClasses"] for push in watcher.received]
            assert totals_seen(totals) == list(range(rounds + 2))
            assert all(a != b for a, b in itertools.pairwise(watcher.received))
        # Notifications: the first absence made every student MAHROOM, told once to each of
        # their subscribers (written by whichever worker checked first, once).
        for key, watchers in notifications.items():
            for watcher in watchers:
                event = await watcher.take("notificationReceived")
                assert event["type"] == NotificationType.MAHROOM_ALERT.name
                assert watcher.client.pending(watcher.operation) == 0
            assert len({w.received[0]["id"] for w in watchers}) == 1, key
        for watcher in [*classes, *_all(own_marks)]:
            assert watcher.client.pending(watcher.operation) == 0
    alerts = await factory.count(
        Notification,
        Notification.tenant_id == school.tenant.id,
        Notification.type == NotificationType.MAHROOM_ALERT,
        Notification.user_id.in_([a.id for a in school.accounts.values()]),
    )
    assert alerts == len(school.students)


def totals_seen(totals: list[int]) -> list[int]:
    """``totals`` with repeats in a row collapsed."""
    return [total for n, total in enumerate(totals) if n == 0 or totals[n - 1] != total]


def _all(watchers: dict[str, list[Watcher]]) -> list[Watcher]:
    return [watcher for group in watchers.values() for watcher in group]


# --- rate limits -------------------------------------------------------------------------------


async def test_a_rate_limit_counts_reads_on_every_process(deployment: Deployment, factory: Factory):
    servers = deployment.servers
    school = await factory.school(students=2)
    reader, other = school.students

    async def read(server: ServerProcess, student: Student) -> httpx.Response:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=WAIT_SECONDS) as http:
            return await http.post(
                "/graphql",
                json={"query": READ_DASHBOARD},
                headers={"authorization": f"Bearer {school.student_token(student)}"},
            )

    allowed = [await read(servers[n % len(servers)], reader) for n in range(DASHBOARD_LIMIT)]
    assert [r.status_code for r in allowed] == [200] * DASHBOARD_LIMIT
    assert [int(r.headers["ratelimit-remaining"]) for r in allowed] == [4, 3, 2, 1, 0]
    # the sixth read and any after it, on whichever process
    for server in servers:
        refused = await read(server, reader)
        assert refused.status_code == 429, refused.text
        [error] = refused.json()["errors"]
        assert error["extensions"]["code"] == "RATE_LIMIT_EXCEEDED"
        assert 0 < int(refused.headers["retry-after"]) <= 60
    # another student's reads are their own
    assert (await read(servers[2], other)).status_code == 200
