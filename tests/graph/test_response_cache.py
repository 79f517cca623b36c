"""The response cache through the GraphQL endpoint: a repeated query is answered whole without
running; every kind of write is seen by the next read; viewers never share an answer unless
their scope is the same; what may not be kept is not; and a hit always equals a fresh run."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from sqlalchemy import update

from services.models import AttendanceStatus, User
from services.platform.cache import tenant_key
from services.platform.settings import RateLimit, TrustMode
from tests.factories import (
    PASSWORD,
    School,
    api_process,
    counted_statements,
    error_codes,
    gql,
    run_jobs,
)
from tests.graph.test_administration import MOVE, UPDATE_THRESHOLDS
from tests.graph.test_auth import CHANGE
from tests.graph.test_cached_reads import MARK, mark_input, teacher_marks
from tests.graph.test_certificates import REVIEW, uploaded

DASHBOARD = """query Dashboard($id: ID) {
  studentDashboard(studentId: $id) {
    studentId totalClasses presentDays absentDays sickDays leaveDays attendanceRate
    classAverage ranking classSize percentile trend standing lastUpdated statisticsCalculatedAt
  }
}"""
TEACHER_PAGE = """query ClassPage($id: ID!, $first: Int) {
  classStatistics(classroomId: $id) { averageAttendance totalStudents studentsAtRisk }
  classRankings(classroomId: $id, first: $first) {
    totalCount edges { cursor node { studentId rank attendanceRate } }
  }
}"""
WITH_NAMES = "query Named($id: ID) { studentDashboard(studentId: $id) { student { name } } }"
YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)
UNAVAILABLE = "SERVICE_UNAVAILABLE"


async def read(
    api: httpx.AsyncClient, query: str, variables: dict[str, Any] | None, token: str
) -> tuple[dict[str, Any], str | None, str]:
    """The body, what the response cache did (``hit``, ``stored`` or None) and Cache-Status
    (its seconds to live left out)."""
    response = await api.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"authorization": f"Bearer {token}"},
    )
    body = response.json()
    freshness = (body.get("extensions") or {}).get("freshness") or {}
    status = re.sub(r"; ttl=\d+", "", response.headers.get("cache-status", ""))
    return body, freshness.get("cache", {}).get("response"), status


async def school_with_marks(factory, *, classrooms: int = 1, students: int = 2) -> School:
    """Teacher ``i`` teaches class ``i``; every student has one mark, in turn PRESENT and ABSENT."""
    school = await factory.school(classrooms=classrooms, students=students, teachers=classrooms)
    for index, student in enumerate(school.students):
        status = AttendanceStatus.PRESENT if index % 2 == 0 else AttendanceStatus.ABSENT
        await factory.records(school, student, [(YESTERDAY, 1, status)])
    await factory.refresh()
    return school


async def test_a_repeated_query_is_answered_whole_without_running(client, factory):
    # given a student's dashboard read once: run, and its answer kept
    school = await school_with_marks(factory)
    token = school.student_token(school.students[0])
    first, action, status = await read(client, DASHBOARD, None, token)
    assert (action, status) == (
        "stored",
        "rollcall; fwd=miss; stored, rollcall-response; fwd=miss; stored",
    )
    # when it is read again
    with counted_statements() as statements:
        response = await client.post(
            "/graphql", json={"query": DASHBOARD}, headers={"authorization": f"Bearer {token}"}
        )
    # then the same answer comes from the response cache: no SQL, and it says so
    assert statements == []
    second = response.json()
    assert second["data"] == first["data"]
    assert re.fullmatch(r"rollcall-response; hit; ttl=\d+", response.headers["cache-status"])
    ttl = int(response.headers["cache-status"].rsplit("=", 1)[1])
    assert 0 < ttl <= 120  # the dashboard's soft TTL, the first of its reads to go stale
    freshness = second["extensions"]["freshness"]
    assert freshness["cache"] == {
        "hits": 1,
        "misses": 0,
        "bypassed": 0,
        "staleServes": 0,
        "response": "hit",
    }
    assert freshness["statistics"]["stale"] is False
    assert (
        freshness["statistics"]["lastCalculated"]
        == first["extensions"]["freshness"]["statistics"]["lastCalculated"]
    )


async def test_the_teacher_class_page_is_kept_and_served(client, factory):
    school = await school_with_marks(factory, students=3)
    variables = {"id": str(school.classrooms[0].id), "first": 2}
    teacher = school.token(school.teachers[0])
    first, action, _ = await read(client, TEACHER_PAGE, variables, teacher)
    assert "errors" not in first and action == "stored"
    second, action, _ = await read(client, TEACHER_PAGE, variables, teacher)
    assert (second["data"], action) == (first["data"], "hit")
    assert second["extensions"]["freshness"]["cache"]["hits"] == 2
    # another page is another answer
    other, action, _ = await read(client, TEACHER_PAGE, {**variables, "first": 3}, teacher)
    assert action == "stored" and other["data"]["classRankings"]["totalCount"] == 3


async def kept_then_served(api, query, variables, token) -> dict[str, Any]:
    """Read twice: kept, then served from the response cache; the answer."""
    first, action, _ = await read(api, query, variables, token)
    assert "errors" not in first and action == "stored", first
    second, action, _ = await read(api, query, variables, token)
    assert action == "hit"
    return second["data"]


async def test_a_mark_is_seen_by_the_next_read(client, factory):
    school = await school_with_marks(factory)
    student = school.students[0]
    token = school.student_token(student)
    before = (await kept_then_served(client, DASHBOARD, None, token))["studentDashboard"]
    await teacher_marks(client, school, [student], AttendanceStatus.ABSENT, day=YESTERDAY, period=2)
    after, action, _ = await read(client, DASHBOARD, None, token)
    assert action == "stored"
    assert after["data"]["studentDashboard"]["absentDays"] == before["absentDays"] + 1


async def test_a_review_is_seen_by_the_next_read(client, factory, settings):
    school, student = await factory.student_with([(date(2026, 10, 5), 1, AttendanceStatus.ABSENT)])
    token = school.student_token(student)
    certificate = await uploaded(client, token)
    await run_jobs(settings)
    query = "query D { studentDashboard { sickDays absentDays } }"
    before = (await kept_then_served(client, query, None, token))["studentDashboard"]
    assert before == {"sickDays": 0, "absentDays": 1}
    body = await gql(
        client,
        REVIEW,
        {"id": certificate["id"], "decision": "APPROVE"},
        token=school.token(school.teachers[0]),
    )
    assert "errors" not in body, body
    after, _, _ = await read(client, query, None, token)
    assert after["data"]["studentDashboard"] == {"sickDays": 1, "absentDays": 0}


async def test_new_thresholds_are_seen_by_the_next_read(client, factory):
    marks = [(YESTERDAY, period, AttendanceStatus.PRESENT) for period in range(1, 5)]
    school, student = await factory.student_with([*marks, (YESTERDAY, 5, AttendanceStatus.ABSENT)])
    token = school.student_token(student)
    query = "{ studentDashboard { attendanceRate standing } }"
    assert (await kept_then_served(client, query, None, token))["studentDashboard"] == {
        "attendanceRate": 80.0,
        "standing": "OK",
    }
    new = {"mahroomAtOrBelow": 70, "warningBelow": 85, "tasdiqBelow": 90}
    body = await gql(client, UPDATE_THRESHOLDS, {"input": new}, token=school.token(school.admin))
    assert "errors" not in body, body
    after, _, _ = await read(client, query, None, token)
    assert after["data"]["studentDashboard"]["standing"] == "WARNING"


async def test_a_move_out_of_a_teachers_class_takes_their_kept_answer_away(client, factory):
    # given teacher 0 of class 0 reading a student of class 0, kept and served
    school = await school_with_marks(factory, classrooms=2, students=2)
    [student, *_] = school.students_of(school.classrooms[0])
    teacher = school.token(school.teachers[0])
    variables = {"id": str(student.id)}
    await kept_then_served(client, DASHBOARD, variables, teacher)
    # when the admin moves the student to class 1, which teacher 0 does not teach
    body = await gql(
        client,
        MOVE,
        {"student": str(student.id), "classroom": str(school.classrooms[1].id)},
        token=school.token(school.admin),
    )
    assert "errors" not in body, body
    # then the kept answer is not served: the teacher may no longer read it
    refused, action, _ = await read(client, DASHBOARD, variables, teacher)
    assert error_codes(refused) == ["FORBIDDEN"] and action is None


async def test_a_password_change_ends_the_old_tokens_kept_answers(client, factory):
    school = await school_with_marks(factory)
    student = school.students[0]
    old = school.student_token(student)
    await kept_then_served(client, DASHBOARD, None, old)
    body = await gql(
        client, CHANGE, {"current": PASSWORD, "new": "a much longer passphrase"}, token=old
    )
    assert body == {"data": {"changePassword": True}}
    refused, _, _ = await read(client, DASHBOARD, None, old)
    assert error_codes(refused) == ["UNAUTHENTICATED"]


async def test_a_disabled_account_gets_no_kept_answer_once_its_tag_moves(client, factory, redis):
    school = await school_with_marks(factory)
    teacher = school.teachers[0]
    token = school.token(teacher)
    variables = {"id": str(school.students[0].id)}
    await kept_then_served(client, DASHBOARD, variables, token)
    async with factory.session_factory() as session, session.begin():
        await session.execute(update(User).where(User.id == teacher.id).values(active=False))
    # what every write to an account does after its commit (services/credentials.py)
    await redis.delete(tenant_key(school.tenant.id, "tag", f"user:{teacher.id}"))
    refused, _, _ = await read(client, DASHBOARD, variables, token)
    assert error_codes(refused) == ["UNAUTHENTICATED"]


async def test_viewers_share_an_answer_only_when_their_scope_is_the_same(client, factory):
    school = await school_with_marks(factory)
    first, second = school.students
    variables = {"id": str(first.id)}
    admin, teacher = school.token(school.admin), school.token(school.teachers[0])
    # the admin's answer is kept and served to the admin
    await kept_then_served(client, DASHBOARD, variables, admin)
    # the teacher's same query is run for the teacher, and so is another token of the admin's
    _, action, _ = await read(client, DASHBOARD, variables, teacher)
    assert action == "stored"
    await asyncio.sleep(0.002)  # a token issued a millisecond later: its own iat
    _, action, _ = await read(client, DASHBOARD, variables, factory.issue(school.admin))
    assert action == "stored"
    # two students asking for "my dashboard" get their own
    mine = await kept_then_served(client, DASHBOARD, None, school.student_token(first))
    theirs, action, _ = await read(client, DASHBOARD, None, school.student_token(second))
    assert action == "stored"
    assert mine["studentDashboard"]["studentId"] == str(first.id)
    assert theirs["data"]["studentDashboard"]["studentId"] == str(second.id)
    # and another school's admin asking for this student is refused, never served
    stranger = await factory.school(students=1)
    refused, action, _ = await read(client, DASHBOARD, variables, stranger.token(stranger.admin))
    assert error_codes(refused) == ["NOT_FOUND"] and action is None


async def test_what_may_not_be_kept_is_not(client, factory):
    school = await school_with_marks(factory)
    token = school.student_token(school.students[0])
    # a field read from the database directly (the student's name): no tag covers it
    for _ in range(2):
        body, action, status = await read(client, WITH_NAMES, None, token)
        assert "errors" not in body and action is None and "rollcall-response" not in status
    # an answer with an error (a student asking for a classmate)
    other = {"id": str(school.students[1].id)}
    for _ in range(2):
        body, action, _ = await read(client, DASHBOARD, other, token)
        assert error_codes(body) == ["FORBIDDEN"] and action is None
    # a query with other root fields (the student page's notifications), and a mutation
    page = "query P { studentDashboard { attendanceRate } notifications { totalCount } }"
    for _ in range(2):
        body, action, _ = await read(client, page, None, token)
        assert "errors" not in body and action is None
    mark = mark_input(
        school, school.students[:1], AttendanceStatus.PRESENT, day=YESTERDAY, period=3
    )
    teacher = school.token(school.teachers[0])
    for _ in range(2):
        body, action, _ = await read(client, MARK, mark, teacher)
        assert "errors" not in body and action is None


async def test_a_served_answer_counts_against_the_rate_limit(settings, factory):
    limited = dataclasses.replace(
        settings, rate_limits_enabled=True, rate_limits={"dashboard": RateLimit(2, 60)}
    )
    school = await school_with_marks(factory)
    token = school.student_token(school.students[0])
    async with api_process(limited) as api:
        headers = {"authorization": f"Bearer {token}"}
        answers = [
            await api.post("/graphql", json={"query": DASHBOARD}, headers=headers) for _ in range(3)
        ]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[1].json()["extensions"]["freshness"]["cache"]["response"] == "hit"
    assert answers[1].headers["ratelimit-remaining"] == "0"
    assert error_codes(answers[2].json()) == ["RATE_LIMIT_EXCEEDED"]


async def test_persisted_queries_by_get_are_served_and_revalidate_with_an_etag(client, factory):
    school = await school_with_marks(factory)
    headers = {"authorization": f"Bearer {school.student_token(school.students[0])}"}
    digest = hashlib.sha256(DASHBOARD.encode()).hexdigest()
    extension = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    posted = await client.post(
        "/graphql", json={"query": DASHBOARD, "extensions": extension}, headers=headers
    )
    assert posted.json()["extensions"]["freshness"]["cache"]["response"] == "stored"
    params = {"extensions": orjson.dumps(extension).decode(), "operationName": "Dashboard"}
    got = await client.get("/graphql", params=params, headers=headers)
    assert got.json()["extensions"]["freshness"]["cache"]["response"] == "hit"
    assert got.json()["data"] == posted.json()["data"]
    again = await client.get(
        "/graphql", params=params, headers={**headers, "if-none-match": got.headers["etag"]}
    )
    assert again.status_code == 304


@pytest.fixture(scope="module")
async def uncached(settings) -> AsyncIterator[httpx.AsyncClient]:
    """An API process that runs every operation (no response cache), on the same data."""
    # A database that stalls under the suite's load (a connect past its 5 s) opens a
    # process's breaker: let it close again within the second.
    fresh = dataclasses.replace(settings, response_cache=False, db_breaker_reset_seconds=1)
    async with api_process(fresh) as http:
        yield http


@pytest.fixture(scope="module")
async def two_schools(factory) -> tuple[School, School]:
    return await school_with_marks(factory, classrooms=2, students=4), await school_with_marks(
        factory, students=1
    )


DOCUMENTS = [
    DASHBOARD,
    TEACHER_PAGE,
    "query R($id: ID) { studentRanking(studentId: $id) { rank totalStudents percentile } }",
    "query W($id: ID, $week: Date!) { weeklyAttendance(studentId: $id, weekStart: $week) "
    "{ weekStart totalClasses attendanceRate days { date records { period status } } } }",
    "query Two($id: ID) { a: studentDashboard(studentId: $id) { attendanceRate } "
    "b: studentRanking(studentId: $id) { rank } __typename }",
    WITH_NAMES,
]


@settings(max_examples=40, deadline=None)
@given(
    viewer=st.integers(0, 5),
    document=st.sampled_from(DOCUMENTS),
    target=st.integers(0, 6),
    mark=st.one_of(
        st.none(), st.tuples(st.integers(0, 3), st.sampled_from(list(AttendanceStatus)))
    ),
)
async def test_a_served_answer_always_equals_a_fresh_run(
    client, uncached, two_schools, viewer, document, target, mark
):
    """Property: for any viewer, document and variables, after any mark, the answer the
    response cache gives (served or kept) equals what running the operation gives."""
    school, stranger = two_schools
    viewers = [
        school.token(school.admin),
        *(school.token(teacher) for teacher in school.teachers),
        *(school.student_token(student) for student in school.students[:2]),
        stranger.token(stranger.admin),
        stranger.student_token(stranger.students[0]),
    ]
    token = viewers[viewer % len(viewers)]
    ids = [
        None,
        *(str(student.id) for student in school.students),
        str(stranger.students[0].id),
        "not-an-id",
    ]
    variables: dict[str, Any] = {"id": ids[target % len(ids)], "week": "2026-11-30"}
    if document == TEACHER_PAGE:
        rooms = [*school.classrooms, *stranger.classrooms]
        variables = {"id": str(rooms[target % len(rooms)].id), "first": 1 + target % 3}
    if mark is not None:
        index, status = mark
        body = await answered(
            client,
            MARK,
            mark_input(
                school, [school.students[index % 2]], status, day=YESTERDAY, period=1 + index
            ),
            school.token(school.admin),
        )
        if UNAVAILABLE in error_codes(body):
            reject()
        assert "errors" not in body, body
    for _ in range(2):  # the first may be kept, the second then served
        cached = await answered(client, document, variables, token)
        fresh = await answered(uncached, document, variables, token)
        if UNAVAILABLE in error_codes(cached) + error_codes(fresh):
            reject()  # the database, not the cache: this example says nothing
        assert cached.get("data") == fresh.get("data")
        assert error_codes(cached) == error_codes(fresh)


async def answered(api, query, variables, token) -> dict[str, Any]:
    """The answer, asked again (up to 5 times, a second apart) while the process says the
    database is unavailable: that says nothing of the cache, only of the machine's load (a
    mark asked again sets the same status: the same write)."""
    for _ in range(5):
        body, _, _ = await read(api, query, variables, token)
        if UNAVAILABLE not in error_codes(body):
            return body
        await asyncio.sleep(1.1)
    return body


async def test_a_query_of_typename_alone_is_run_not_kept(client, factory):
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    for _ in range(2):
        body, action, status = await read(client, "{ __typename }", None, token)
        assert body["data"] == {"__typename": "Query"} and action is None
        assert "rollcall-response" not in status


async def test_a_kept_answer_is_never_served_to_a_document_the_caller_may_not_run(
    client, settings, factory
):
    # given the admin's dashboard query kept by a process that lets anyone run any document
    school = await school_with_marks(factory)
    admin = school.token(school.admin)
    variables = {"id": str(school.students[0].id)}
    await kept_then_served(client, DASHBOARD, variables, admin)
    # when a process enforcing trusted documents for everyone is asked the same, unregistered
    enforced = dataclasses.replace(settings, trusted_documents=TrustMode.ENFORCE)
    async with api_process(enforced) as strict:
        refused, action, _ = await read(strict, DASHBOARD, variables, admin)
    # then it is refused before the response cache is consulted
    assert error_codes(refused) == ["PERSISTED_QUERY_NOT_IN_LIST"] and action is None
