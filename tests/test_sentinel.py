"""The queue and the cache Redis behind Redis Sentinel (``ROLLCALL_REDIS_URL`` and
``ROLLCALL_CACHE_REDIS_URL`` = ``redis+sentinel://…``): the primary is SIGKILLed under a stream
of marks, the Sentinels promote the replica, and an API process and a worker carry on by
themselves, with every mark's jobs run and no notification twice."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis, create_pool
from sqlalchemy import func, select

from rollcall.processes import running_server, running_worker
from services.models import AlertState, Notification, NotificationType
from services.platform.cache import tenant_key
from services.platform.redis_urls import queue_settings
from services.queue import CHECK_THRESHOLDS, drain_outbox
from tests.factories import error_codes, gql, process_env
from tests.servers import HOST, redis_sentinels, sentinel_binaries

pytestmark = pytest.mark.skipif(
    sentinel_binaries() is None,
    reason="redis-server or redis-sentinel is not installed (Debian's redis-sentinel; "
    ".ci/run installs it)",
)
MARK = """mutation M($input: MarkAttendanceInput!) { markAttendance(input: $input) { records { id } } }"""
DASHBOARD = "query D($id: ID!) { studentDashboard(studentId: $id) { attendanceRate standing } }"
# Cached under the student's own tag alone: neither classmates' marks nor a statistics refresh
# make it a miss; only another server (the cache epoch) does.
WEEK = "query W($start: Date!) { weeklyAttendance(weekStart: $start) { totalClasses } }"
STATS = """query S($id: ID!) { classStatistics(classroomId: $id) { averageAttendance
  studentsAtRisk lastCalculated } }"""
STUDENTS = 40  # each marked ABSENT once: each crosses into MAHROOM once, one alert each
KILL_AFTER = 10  # marks before the primary is killed
MARK_INTERVAL = 0.1
RECOVERY_LIMIT = 10.0  # seconds from the kill until the API uses Redis again
SETTLE_LIMIT = 30.0


async def test_a_killed_primary_fails_over_without_losing_or_repeating_a_job(
    settings, factory, session_factory, tmp_path
):
    school = await factory.school(students=STUDENTS + 1)
    witness, *marked = school.students  # read and cached, never marked
    today = datetime.now(UTC).date()
    week = (today - timedelta(days=today.weekday())).isoformat()
    teacher, classroom = school.token(school.teachers[0]), str(school.classrooms[0].id)
    with redis_sentinels(tmp_path / "redis") as servers:
        url = servers.url()
        env = process_env(
            settings,
            ROLLCALL_REDIS_URL=url,
            ROLLCALL_CACHE_REDIS_URL=url,
            ROLLCALL_STATISTICS_REFRESH_DELAY_SECONDS="1",
            # The breaker's probe after a failover: 2 s here, so that the test sees the cache
            # back soon (30 s by default; reads go to PostgreSQL meanwhile).
            ROLLCALL_CACHE_BREAKER_RESET_SECONDS="2",
            ROLLCALL_DEGRADE_CPU_PERCENT="100",
            ROLLCALL_DEGRADE_MEMORY_PERCENT="100",
        )
        async with (
            running_server(env) as server,
            running_worker(env) as worker,
            httpx.AsyncClient(base_url=server.base_url, timeout=10) as http,
        ):

            async def read_witness() -> dict[str, Any]:
                token = school.student_token(witness)
                body = await gql(http, WEEK, {"start": week}, token=token)
                assert "errors" not in body, body
                return body["extensions"]["freshness"]["cache"]

            # given the witness's week kept whole in the cache, on the primary
            await read_witness()
            assert (await read_witness()).get("response") == "hit"

            # when marks stream in and the primary is killed after the first ones
            failures: list[str] = []
            health: list[tuple[float, dict[str, Any]]] = []
            stop = asyncio.Event()
            poller = asyncio.create_task(watch_health(http, health, stop))
            read_failures: list[str] = []
            reader = asyncio.create_task(keep_reading(http, school, marked[0], read_failures, stop))
            killed: list[float] = []

            def kill() -> None:
                servers.primary.kill()
                killed.append(time.monotonic())

            for index, student in enumerate(marked):
                if index == KILL_AFTER:  # while this mark is being answered
                    asyncio.get_running_loop().call_later(0.005, kill)
                failures += await mark_until_done(http, school.absence_today(student), teacher)
                await asyncio.sleep(MARK_INTERVAL)
            last_mark = time.monotonic()

            # then the Sentinels promoted the replica, and the API used the queue Redis again
            # by itself, then the cache (once its breaker's probe succeeded)
            def back(*checks: str) -> float | None:
                for at, ready in health:
                    if at > killed[0] and all(
                        ready.get("checks", {}).get(c) == "up" for c in checks
                    ):
                        return at - killed[0]
                return None

            cache_back = await wait_for(
                lambda: back("redis", "cache"), RECOVERY_LIMIT - (time.monotonic() - killed[0])
            )
            stop.set()
            await asyncio.gather(poller, reader)
            assert servers.primary_port() == servers.replica.port
            queue_back = back("redis")
            assert queue_back is not None and cache_back is not None, health[-3:]
            outboxed = max(ready.get("queue", {}).get("outbox", 0) for _, ready in health)
            # and marks and reads during the failover failed, if at all, with a clean 503 (a
            # mark then succeeded when retried: mark_until_done retries)
            assert set(failures) | set(read_failures) <= {"SERVICE_UNAVAILABLE"}, failures

            async with (
                aioredis.Redis(host=HOST, port=servers.replica.port) as promoted,
                contextlib.aclosing(await create_pool(queue_settings(url))) as queue,
            ):
                # and the jobs Redis refused meanwhile went to the outbox, which the worker
                # drains every minute (at :30): drained here as it would, to keep the test short
                await drain_outbox(redis=queue, session_factory=session_factory)

                # and every mark's consequences happened exactly once: one MAHROOM alert per
                # student, their standing recorded, and the class statistics refreshed
                async def settled() -> tuple[dict[Any, int], dict[Any, AlertState]] | None:
                    alerts, states = await alerts_of(session_factory, school)
                    if any(alerts.get(s.id, 0) == 0 for s in marked):
                        return None
                    return alerts, states

                found = await wait_for(settled, SETTLE_LIMIT)
                settled_after = time.monotonic() - last_mark
                assert found is not None, (
                    f"alerts missing after {SETTLE_LIMIT} s (outboxed {outboxed}):\n"
                    + worker.log_tail()
                )
                alerts, states = found
                assert {alerts[s.id] for s in marked} == {1}, alerts
                assert {(states[s.id].standing, states[s.id].crossings) for s in marked} == {
                    ("MAHROOM", 1)
                }

                async def refreshed() -> dict[str, Any] | None:
                    body = await gql(http, STATS, {"id": classroom}, token=teacher)
                    stats = body.get("data", {}).get("classStatistics") or {}
                    return stats if stats.get("studentsAtRisk") == STUDENTS else None

                stats = await wait_for(refreshed, SETTLE_LIMIT)
                assert stats is not None, worker.log_tail()

                # and the cache followed its epoch rule: the witness's entries, replicated to the
                # promoted server, were computed on another server: a miss, then kept again
                key = tenant_key(school.tenant.id, "weekly", f"{witness.id}:{week}")
                assert await promoted.exists(key), "the old entry is on the promoted replica"
                first, second = await read_witness(), await read_witness()
                assert first["misses"] >= 1 and first.get("response") != "hit", first
                assert second.get("response") == "hit", second
                epoch = await promoted.hgetall(tenant_key(school.tenant.id, "epoch"))
                run_id = (await promoted.info("server"))["run_id"]
                assert epoch[b"run"].decode() == run_id
                ready = (await http.get("/health/ready")).json()
                assert ready["cache"]["server_changes"] >= 1, ready
                runs = await check_runs(queue, marked)
            print(
                f"failover: queue back {queue_back:.1f} s and cache {cache_back:.1f} s after the "
                f"kill; {len(failures)} marks and {len(read_failures)} reads refused, "
                f"{outboxed} jobs in the outbox; settled {settled_after:.1f} s after the last "
                f"mark; threshold checks run per student: {sorted(set(runs))}"
            )


async def check_runs(queue: ArqRedis, students: list[Any]) -> list[int]:
    """Per student, the threshold checks that ran for them (by the results arq kept on the
    promoted server: a check finished on the old primary may not have replicated its result)."""
    checked = Counter(
        key
        for result in await queue.all_job_results()
        if result.function == CHECK_THRESHOLDS
        for key in result.args[1]
    )
    return [checked[str(student.id)] for student in students]


async def keep_reading(
    http: httpx.AsyncClient, school, student, failures: list[str], stop: asyncio.Event
) -> None:
    """A student reading their dashboard every 0.1 s; what failed."""
    while not stop.is_set():
        body = await gql(
            http, DASHBOARD, {"id": str(student.id)}, token=school.student_token(student)
        )
        failures += error_codes(body)
        await asyncio.sleep(0.1)


async def watch_health(
    http: httpx.AsyncClient, seen: list[tuple[float, dict[str, Any]]], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            seen.append((time.monotonic(), (await http.get("/health/ready")).json()))
        except (httpx.HTTPError, ValueError) as error:
            seen.append((time.monotonic(), {"error": repr(error)}))
        await asyncio.sleep(0.1)


async def mark_until_done(
    http: httpx.AsyncClient, variables: dict[str, Any], token: str, *, tries: int = 20
) -> list[str]:
    """Send the mark until it succeeds; the error codes (or HTTP failures) of the tries that
    did not."""
    failures: list[str] = []
    for _ in range(tries):
        try:
            body = await gql(http, MARK, variables, token=token)
        except httpx.HTTPError as error:
            failures.append(repr(error))
        else:
            if not (codes := error_codes(body)):
                return failures
            failures += codes
        await asyncio.sleep(0.3)
    raise AssertionError(f"the mark never succeeded: {failures}")


async def wait_for(check: Any, seconds: float) -> Any:
    """``check()`` (awaited when it is a coroutine) until it returns something not None."""
    deadline = time.monotonic() + max(seconds, 0)
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found is not None or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def alerts_of(session_factory, school) -> tuple[dict[Any, int], dict[Any, AlertState]]:
    """Per student: MAHROOM notifications, and the alert state the checks recorded."""
    users = {student.user_id: student.id for student in school.students}
    async with session_factory() as session:
        rows = await session.execute(
            select(Notification.user_id, func.count())
            .where(
                Notification.tenant_id == school.tenant.id,
                Notification.type == NotificationType.MAHROOM_ALERT,
            )
            .group_by(Notification.user_id)
        )
        states = await session.scalars(
            select(AlertState).where(AlertState.tenant_id == school.tenant.id)
        )
        return (
            {users[user]: count for user, count in rows},
            {state.student_id: state for state in states},
        )
