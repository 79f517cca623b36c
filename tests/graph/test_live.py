"""Subscriptions over graphql-transport-ws against two real uvicorn processes sharing Redis."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import update

from rollcall.live_client import Closed, LiveClient, OperationError
from rollcall.processes import ServerProcess, running_server
from services.live import classroom_channel, user_channel
from services.models import User
from services.platform.settings import Settings
from services.presence import lease_key
from tests.factories import PASSWORD, Factory, School, process_env, run_jobs

PER_USER = 3
CONNECTION_RATE = 20

ATTENDANCE = """
subscription Attendance($studentId: ID, $classroomId: ID) {
  attendanceUpdated(studentId: $studentId, classroomId: $classroomId) {
    recordId studentId classroomId date period status markedBy markedAt subject { id name }
  }
}"""
DASHBOARD = """
subscription Dashboard($studentId: ID) {
  dashboardUpdated(studentId: $studentId) { studentId totalClasses absentDays attendanceRate }
}"""
NOTIFICATIONS = "subscription { notificationReceived { id type title severity read } }"
MARK = """
mutation Mark($input: MarkAttendanceInput!) {
  markAttendance(input: $input) { records { id studentId } }
}
"""


def server_env(settings: Settings, **overrides: str) -> dict[str, str]:
    return process_env(
        settings,
        ROLLCALL_RATE_LIMITS=f"subscription={CONNECTION_RATE}/60s",
        ROLLCALL_WS_CONNECTIONS_PER_USER=str(PER_USER),
        ROLLCALL_WS_PING_INTERVAL_SECONDS="1",
        ROLLCALL_WS_INIT_TIMEOUT_SECONDS="2",
        ROLLCALL_STATISTICS_REFRESH_DELAY_SECONDS="0",
        **overrides,
    )


@pytest.fixture(scope="module")
async def servers(settings: Settings) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    async with contextlib.AsyncExitStack() as stack:
        started = await asyncio.gather(
            stack.enter_async_context(running_server(server_env(settings))),
            stack.enter_async_context(running_server(server_env(settings))),
        )
        yield started[0], started[1]


async def live_report(server: ServerProcess) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        report: dict[str, Any] = (await http.get("/health/ready")).json()["live"]
        return report


async def wait_for(server: ServerProcess, key: str, value: int, within: float = 10.0) -> None:
    """Until the server's live report says ``key`` is ``value`` (listeners are subscribed)."""
    deadline = time.monotonic() + within
    while (current := (await live_report(server))[key]) != value:
        assert time.monotonic() < deadline, f"{key} stayed {current}, expected {value}"
        await asyncio.sleep(0.05)


async def quiet(*servers: ServerProcess) -> None:
    """Until earlier tests' connections and listeners are gone from every server."""
    for server in servers:
        await wait_for(server, "connections", 0)
        await wait_for(server, "listeners", 0)


async def mark(
    server: ServerProcess, school: School, marks: list[tuple[uuid.UUID, str]], period: int = 1
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        response = await http.post(
            "/graphql",
            json={
                "query": MARK,
                "variables": {
                    "input": {
                        "classroomId": str(school.classrooms[0].id),
                        "date": (datetime.now(UTC).date() - timedelta(days=1)).isoformat(),
                        "period": period,
                        "subjectId": str(school.subjects[0].id),
                        "marks": [{"studentId": str(s), "status": status} for s, status in marks],
                    }
                },
            },
            headers={"authorization": f"Bearer {school.token(school.teachers[0])}"},
        )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


async def subscribers(settings: Settings, channel: str) -> int:
    """How many processes subscribe to ``channel`` in Redis."""
    assert settings.redis_url is not None
    async with aioredis.Redis.from_url(settings.redis_url) as redis:
        return int(dict(await redis.pubsub_numsub(channel)).get(channel.encode(), 0))


async def wait_for_channel(settings: Settings, channel: str, within: float = 10.0) -> None:
    """Until some process subscribes to ``channel`` in Redis (a listener is live)."""
    deadline = time.monotonic() + within
    assert settings.redis_url is not None
    async with aioredis.Redis.from_url(settings.redis_url) as redis:
        while not dict(await redis.pubsub_numsub(channel)).get(channel.encode()):
            assert time.monotonic() < deadline, f"nobody subscribed to {channel}"
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def live(server: ServerProcess, token: str | None) -> AsyncIterator[LiveClient]:
    async with LiveClient.connect(server.ws_url) as client:
        await client.init(token)
        yield client


async def test_a_mark_in_one_process_reaches_a_subscriber_of_the_other(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory, settings: Settings
):
    first, second = servers
    school = await factory.school(students=2)
    student, classmate = school.students
    async with live(second, school.student_token(student)) as client:
        operation = await client.subscribe(ATTENDANCE)
        channel = classroom_channel(school.tenant.id, school.classrooms[0].id).name
        await wait_for_channel(settings, channel)
        await mark(first, school, [(student.id, "ABSENT"), (classmate.id, "PRESENT")])
        event = (await client.next(operation, within=2.0))["data"]["attendanceUpdated"]
        received = datetime.now(UTC)
    assert event["studentId"] == str(student.id)
    assert event["status"] == "ABSENT" and event["period"] == 1
    assert event["subject"] == {"id": str(school.subjects[0].id), "name": school.subjects[0].name}
    assert event["markedBy"] == str(school.teachers[0].id)
    # Property 6: within 2 s of the mark's transaction.
    assert received - datetime.fromisoformat(event["markedAt"]) < timedelta(seconds=2)


@hypothesis_settings(max_examples=6)
@given(
    sizes=st.integers(1, 8).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.integers(0, 1), min_size=n, max_size=n),  # each student's process
            st.integers(0, 1),  # the teacher's process
            st.integers(0, 1),  # the process that marks
            st.lists(
                st.sampled_from(["PRESENT", "ABSENT", "SICK", "LEAVE"]), min_size=n, max_size=n
            ),
        )
    )
)
async def test_every_subscriber_of_a_classroom_receives_the_broadcast(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory, sizes: Any
):
    """Property 8: for any class size and any spread of subscribers over the processes, each
    student receives exactly their own mark and the teacher every mark of the class."""
    size, placement, teacher_at, marker_at, statuses = sizes
    await quiet(*servers)
    school = await factory.school(students=size)
    async with contextlib.AsyncExitStack() as stack:
        students = []
        for student, where in zip(school.students, placement, strict=True):
            client = await stack.enter_async_context(
                live(servers[where], school.student_token(student))
            )
            students.append((student, client, await client.subscribe(ATTENDANCE)))
        teacher = await stack.enter_async_context(
            live(servers[teacher_at], school.token(school.teachers[0]))
        )
        teacher_operation = await teacher.subscribe(
            ATTENDANCE, {"classroomId": str(school.classrooms[0].id)}
        )
        for index, server in enumerate(servers):
            expected = placement.count(index) + (teacher_at == index)
            await wait_for(server, "listeners", expected)
        marks = [(s.id, status) for s, status in zip(school.students, statuses, strict=True)]
        await mark(servers[marker_at], school, marks)
        for (student, client, operation), status in zip(students, statuses, strict=True):
            event = (await client.next(operation))["data"]["attendanceUpdated"]
            assert (event["studentId"], event["status"]) == (str(student.id), status)
        seen = {}
        for _ in range(size):
            event = (await teacher.next(teacher_operation))["data"]["attendanceUpdated"]
            seen[event["studentId"]] = event["status"]
        assert seen == {str(s): status for s, status in marks}
        await asyncio.sleep(0.2)
        assert all(client.pending(operation) == 0 for _, client, operation in students)


async def test_a_student_naming_their_class_receives_only_their_own_marks(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory
):
    school = await factory.school(students=3)
    student, *classmates = school.students
    await quiet(servers[0])
    async with live(servers[0], school.student_token(student)) as client:
        operation = await client.subscribe(
            ATTENDANCE, {"classroomId": str(school.classrooms[0].id)}
        )
        await wait_for(servers[0], "listeners", 1)
        await mark(servers[1], school, [(s.id, "ABSENT") for s in classmates])
        await mark(servers[1], school, [(student.id, "SICK")], period=2)
        event = (await client.next(operation))["data"]["attendanceUpdated"]
    assert (event["studentId"], event["status"]) == (str(student.id), "SICK")


@pytest.mark.parametrize(
    ("who", "arguments", "code"),
    [
        ("student", {"studentId": "other"}, "FORBIDDEN"),
        ("student", {"classroomId": "other-class"}, "FORBIDDEN"),
        ("student", {"studentId": "unknown"}, "NOT_FOUND"),
        ("student", {"studentId": "not-an-id"}, "VALIDATION_ERROR"),
        ("teacher", {"classroomId": "other-class"}, "FORBIDDEN"),
        ("teacher", {"studentId": "other"}, "FORBIDDEN"),
        ("admin", {}, "VALIDATION_ERROR"),
    ],
)
async def test_subscriptions_are_authorised_as_queries_are(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory, who, arguments, code
):
    school = await factory.school(classrooms=2, students=1, teachers=2)
    own, other = school.students
    ids = {
        "other": str(other.id),
        "other-class": str(school.classrooms[1].id),
        "unknown": str(uuid.uuid4()),
        "not-an-id": "42",
    }
    token = {
        "student": school.student_token(own),
        "teacher": school.token(school.teachers[0]),
        "admin": school.token(school.admin),
    }[who]
    async with live(servers[0], token) as client:
        for query in (ATTENDANCE, DASHBOARD):
            variables = {key: ids[value] for key, value in arguments.items()}
            if query is DASHBOARD and "studentId" not in variables:
                continue
            operation = await client.subscribe(query, variables)
            with pytest.raises(OperationError) as refused:
                await client.next(operation)
            assert refused.value.code == code, refused.value.errors
            assert refused.value.errors[0]["extensions"]["requestId"]


async def test_a_partner_subscribes_with_registered_documents_only(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory
):
    school = await factory.school(students=1)
    partner = await factory.partner(school)
    registered = f"query Partner{uuid.uuid4().hex} {{ me {{ role }} }}"
    await factory.trust(registered)
    async with live(servers[0], partner) as client:
        refused = await client.subscribe(NOTIFICATIONS)
        with pytest.raises(OperationError) as error:
            await client.next(refused)
        assert error.value.code == "PERSISTED_QUERY_NOT_IN_LIST", error.value.errors
        allowed = await client.subscribe(registered)
        assert (await client.next(allowed))["data"]["me"]["role"] == "PARTNER"


async def test_one_connection_runs_a_bounded_number_of_operations(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory
):
    school = await factory.school(students=1)
    async with live(servers[0], school.token(school.admin)) as client:
        running = [await client.subscribe(NOTIFICATIONS) for _ in range(20)]
        refused = await client.subscribe(NOTIFICATIONS)
        with pytest.raises(OperationError) as error:
            await client.next(refused)
        assert error.value.code == "TOO_MANY_OPERATIONS", error.value.errors
        assert error.value.errors[0]["extensions"]["requestId"]
        await client.complete(running[0])
        # a slot is free again: the next operation runs
        freed = await client.subscribe("query { me { role } }")
        assert (await client.next(freed))["data"]["me"]["role"] == "ADMIN"


async def test_connections_without_a_valid_token_are_closed(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory
):
    school = await factory.school(students=1)
    expired = factory.issue(school.admin, ttl=-60)
    disabled = await factory.school(students=1)
    async with factory.session_factory() as session, session.begin():
        await session.execute(update(User).where(User.id == disabled.admin.id).values(active=False))
    for token in (None, "not-a-token", expired, disabled.token(disabled.admin)):
        async with LiveClient.connect(servers[0].ws_url) as client:
            with pytest.raises(Closed) as closed:
                await client.init(token)
        assert closed.value.code == 4403, closed.value
    async with LiveClient.connect(servers[0].ws_url) as client:
        await client.subscribe(ATTENDANCE)
        assert (await client.wait_closed()).code == 4401
    async with LiveClient.connect(servers[0].ws_url) as client:
        assert (await client.wait_closed(within=5)).code == 4408  # no connection_init in 2 s


async def test_a_connection_is_closed_when_its_token_expires(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory
):
    school = await factory.school(students=1)
    short_lived = factory.issue(school.admin, ttl=2)
    async with live(servers[0], short_lived) as client:
        await client.subscribe(ATTENDANCE, {"classroomId": str(school.classrooms[0].id)})
        closed = await client.wait_closed(within=6)
    assert closed.code == 4403 and "expired" in closed.reason


async def test_a_connection_is_closed_when_its_accounts_password_changes(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory
):
    school = await factory.school(students=1)
    token = school.token(school.admin)
    async with live(servers[0], token) as client:
        await client.subscribe(ATTENDANCE, {"classroomId": str(school.classrooms[0].id)})
        async with httpx.AsyncClient(base_url=servers[1].base_url) as http:
            changed = await http.post(
                "/graphql",
                json={
                    "query": "mutation { changePassword(currentPassword: "
                    f'"{PASSWORD}", newPassword: "another long passphrase") }}'
                },
                headers={"authorization": f"Bearer {token}"},
            )
        assert changed.json() == {"data": {"changePassword": True}}
        closed = await client.wait_closed(within=6)
    assert closed.code == 4403 and "password was changed" in closed.reason


async def test_the_legacy_graphql_ws_protocol_is_refused(
    servers: tuple[ServerProcess, ServerProcess],
):
    async with LiveClient.connect(servers[0].ws_url, subprotocols=("graphql-ws",)) as client:
        assert client.connection.subprotocol is None
        assert (await client.wait_closed()).code == 4406


async def test_a_user_holds_at_most_the_limit_of_connections_across_processes(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory
):
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    async with contextlib.AsyncExitStack() as stack:
        held = [
            await stack.enter_async_context(live(servers[n % 2], token)) for n in range(PER_USER)
        ]
        async with LiveClient.connect(servers[1].ws_url) as extra:
            with pytest.raises(Closed) as closed:
                await extra.init(token)
        assert closed.value.code == 1013 and "Retry in" in closed.value.reason
        await held[0].connection.close()
        await wait_for_lease_count(factory, school, PER_USER - 1)
        async with live(servers[1], token):
            pass


async def wait_for_lease_count(factory: Factory, school: School, count: int) -> None:
    user = school.accounts[school.students[0].id]
    key = lease_key(school.tenant.id, user.id)
    assert factory.settings.redis_url is not None
    async with aioredis.Redis.from_url(factory.settings.redis_url) as redis:
        deadline = time.monotonic() + 5
        while await redis.zcard(key) != count:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)


async def test_new_connections_beyond_the_rate_are_refused(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory
):
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    for n in range(CONNECTION_RATE):
        async with live(servers[n % 2], token):
            pass
    async with LiveClient.connect(servers[0].ws_url) as client:
        with pytest.raises(Closed) as closed:
            await client.init(token)
    assert closed.value.code == 1013
    assert "Retry in" in closed.value.reason


@pytest.mark.parametrize("vanish", ["abort", "silence"])
async def test_a_dropped_clients_resources_are_released(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory, settings: Settings, vanish
):
    """Property 10: within 30 s (here the ping interval is 1 s) the connection, its listener,
    its process's Redis subscription and its lease are all gone."""
    server = servers[0]
    await quiet(server)
    school = await factory.school(students=1)
    student = school.students[0]
    channel = classroom_channel(school.tenant.id, school.classrooms[0].id).name
    async with LiveClient.connect(server.ws_url, answer_pings=vanish == "abort") as client:
        await client.init(school.student_token(student))
        await client.subscribe(ATTENDANCE)
        await wait_for(server, "listeners", 1)
        assert (await live_report(server))["connections"] == 1
        await wait_for_lease_count(factory, school, 1)
        if vanish == "abort":
            client.connection.transport.abort()
        else:
            closed = await client.wait_closed(within=5)
            assert closed.code == 1001
    await wait_for(server, "listeners", 0, within=5)
    await wait_for(server, "connections", 0, within=5)
    await wait_for_lease_count(factory, school, 0)
    assert await subscribers(settings, channel) == 0


async def test_clients_of_a_stopping_process_get_a_close_frame_and_reconnect_elsewhere(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory, settings: Settings
):
    school = await factory.school(students=1)
    student = school.students[0]
    token = school.student_token(student)
    async with running_server(server_env(settings)) as leaving, live(leaving, token) as client:
        await client.subscribe(ATTENDANCE)
        await wait_for(leaving, "listeners", 1)
        await leaving.stop(signal.SIGTERM)
        assert (await client.wait_closed()).code == 1012
    async with live(servers[0], token) as client:
        operation = await client.subscribe(ATTENDANCE)
        await wait_for_channel(
            settings, classroom_channel(school.tenant.id, student.classroom_id).name
        )
        await mark(servers[1], school, [(student.id, "LEAVE")])
        assert (await client.next(operation))["data"]["attendanceUpdated"]["status"] == "LEAVE"


async def test_dashboards_are_pushed_after_marks_and_refreshes_computed_once(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory
):
    school = await factory.school(students=2)
    student = school.students[0]
    token = school.student_token(student)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(live(servers[n % 2], token)) for n in range(3)]
        operations = [await client.subscribe(DASHBOARD) for client in clients]
        for client, operation in zip(clients, operations, strict=True):
            first = (await client.next(operation))["data"]["dashboardUpdated"]
            assert (first["studentId"], first["totalClasses"]) == (str(student.id), 0)
        # The teacher's account state and classes are cached too: read them first, so that
        # what is counted below is the dashboard alone.
        async with httpx.AsyncClient(base_url=servers[1].base_url) as http:
            teacher = {"authorization": f"Bearer {school.token(school.teachers[0])}"}
            await http.post(
                "/graphql",
                json={"query": "{ me { id classrooms { totalCount } } }"},
                headers=teacher,
            )
        computed = await computations(servers)
        await mark(servers[1], school, [(student.id, "ABSENT"), (school.students[1].id, "PRESENT")])
        for client, operation in zip(clients, operations, strict=True):
            pushed = (await client.next(operation))["data"]["dashboardUpdated"]
            assert (pushed["totalClasses"], pushed["absentDays"]) == (1, 1)
        # One computation for three subscribers in two processes.
        assert await computations(servers) == computed + 1
        await factory.refresh()
        for client, operation in zip(clients, operations, strict=True):
            refreshed = (await client.next(operation))["data"]["dashboardUpdated"]
            assert refreshed["attendanceRate"] == 0
        await mark(servers[0], school, [(school.students[1].id, "ABSENT")], period=2)
        with pytest.raises(TimeoutError):
            await clients[0].next(operations[0], within=0.3)


async def computations(servers: tuple[ServerProcess, ...]) -> int:
    total = 0
    for server in servers:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            total += (await http.get("/health/ready")).json()["cache"]["computed"]
    return total


async def test_notifications_reach_their_user_when_the_job_writes_them(
    servers: tuple[ServerProcess, ServerProcess], factory: Factory, settings: Settings
):
    school = await factory.school(students=1)
    student = school.students[0]
    async with live(servers[0], school.student_token(student)) as client:
        operation = await client.subscribe(NOTIFICATIONS)
        await wait_for_channel(
            settings, user_channel(school.tenant.id, school.accounts[student.id].id).name
        )
        await mark(servers[1], school, [(student.id, "ABSENT")])
        await run_jobs(settings)
        pushed = (await client.next(operation))["data"]["notificationReceived"]
    assert (pushed["type"], pushed["severity"], pushed["read"]) == ("MAHROOM_ALERT", "ERROR", False)
