"""The demo tenant is what the API contract promises."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, select

from services.bulk_seed import SchoolSeeded, SchoolShape, SeedConflict, seed_bulk
from services.models import AttendanceRecord, Classroom, Student, TeacherAssignment, Tenant, User
from services.platform.storage import create_store
from services.seed import DEMO_PASSWORD, DEMO_PERIODS, seed_demo
from tests.factories import gql

LOGIN = 'mutation L($e: String!, $p: String!) { login(tenant: "demo", email: $e, password: $p) { token user { role } } }'
ROSTER = "query R($id: ID!) { classroom(id: $id) { name students(first: 100) { totalCount edges { node { id } } } } }"


@pytest.fixture(scope="module")
async def demo(session_factory, settings):
    store = create_store(settings.storage_url)
    today = datetime.now(UTC).date()
    created = await seed_demo(session_factory=session_factory, today=today, store=store)
    assert created
    again = await seed_demo(session_factory=session_factory, today=today, store=store)
    assert again is False  # idempotent without --reset


CERTIFICATES = """{ medicalCertificates(status: AWAITING_REVIEW) {
  totalCount edges { node { id fileName downloadUrl } } } }"""


async def test_demo_certificates_await_review_and_download(client, demo):
    token, _ = await login(client, "admin@demo.school")
    body = await gql(client, CERTIFICATES, token=token)
    listed = body["data"]["medicalCertificates"]
    assert listed["totalCount"] == 2
    for edge in listed["edges"]:
        served = await client.get(edge["node"]["downloadUrl"])
        assert served.status_code == 200
        assert served.content.startswith(b"%PDF-1.4")


async def login(client, email: str) -> tuple[str, str]:
    body = await gql(client, LOGIN, {"e": email, "p": DEMO_PASSWORD})
    assert "errors" not in body, body
    return body["data"]["login"]["token"], body["data"]["login"]["user"]["role"]


async def test_demo_accounts_log_in_with_their_roles(client, demo):
    assert (await login(client, "admin@demo.school"))[1] == "ADMIN"
    assert (await login(client, "teacher@demo.school"))[1] == "TEACHER"
    for number in (1, 40):
        assert (await login(client, f"student{number}@demo.school"))[1] == "STUDENT"


async def test_the_other_demo_classes_have_accounts_waiting_for_a_password(session_factory, demo):
    async with session_factory() as session:
        accounts = list(
            await session.execute(
                select(Classroom.name, User.email, User.password_hash.is_(None))
                .join(Student, Student.classroom_id == Classroom.id)
                .join(User, User.id == Student.user_id)
                .join(Tenant, Tenant.id == Classroom.tenant_id)
                .where(Tenant.slug == "demo", Classroom.name != "10-A")
                .order_by(User.email)
            )
        )
    assert len(accounts) == 50
    assert tuple(accounts[0]) == ("10-B", "10b-01@demo.school", True)
    assert all(no_password for _, _, no_password in accounts)


async def test_demo_class_10a_has_every_standing(client, demo):
    token, _ = await login(client, "teacher@demo.school")
    me = await gql(client, "{ me { tenant { id } } }", token=token)
    assert "errors" not in me
    student_token, _ = await login(client, "student1@demo.school")
    room = (await gql(client, "{ me { student { classroom { id name } } } }", token=student_token))[
        "data"
    ]["me"]["student"]["classroom"]
    assert room["name"] == "10-A"
    roster = (await gql(client, ROSTER, {"id": room["id"]}, token=token))["data"]["classroom"][
        "students"
    ]
    assert roster["totalCount"] == 40
    standings = set()
    rates: list[float] = []
    trends: set[str] = set()
    for edge in roster["edges"]:
        body = await gql(
            client,
            "query D($id: ID) { studentDashboard(studentId: $id) { standing totalClasses attendanceRate trend } }",
            {"id": edge["node"]["id"]},
            token=token,
        )
        dashboard = body["data"]["studentDashboard"]
        assert dashboard["totalClasses"] == 180  # 30 school days x 6 periods
        standings.add(dashboard["standing"])
        rates.append(dashboard["attendanceRate"])
        trends.add(dashboard["trend"])
    assert standings == {"OK", "WARNING", "TASDIQ", "MAHROOM"}
    # like a real class: a spread of rates, not a block of ties, and some students changing
    assert len(set(rates)) >= 25 and max(rates) - min(rates) > 25
    assert max(rates.count(rate) for rate in rates) <= 4
    assert {"IMPROVING", "DECLINING", "STABLE"} <= trends


async def test_demo_students_have_unread_notifications(client, demo):
    token, _ = await login(client, "student7@demo.school")
    body = await gql(
        client,
        "{ all: notifications { totalCount } unread: notifications(unreadOnly: true) { totalCount } }",
        token=token,
    )
    assert body["data"]["all"]["totalCount"] >= 2
    assert body["data"]["unread"]["totalCount"] >= 1


async def test_the_teacher_teaches_every_demo_class(session_factory, demo):
    async with session_factory() as session:
        classes = await session.scalar(
            select(func.count()).select_from(Classroom).join(Tenant).where(Tenant.slug == "demo")
        )
        taught = await session.scalar(
            select(func.count())
            .select_from(TeacherAssignment)
            .join(User, User.id == TeacherAssignment.teacher_id)
            .where(User.email == "teacher@demo.school")
        )
    assert classes >= 3 and taught == classes


async def bulk_contents(session_factory, slug: str) -> list[tuple]:
    """A school's students and marks, in an order independent of ids."""
    async with session_factory() as session:
        rows = await session.execute(
            select(Classroom.name, Student.name, AttendanceRecord.date, AttendanceRecord.period)
            .add_columns(AttendanceRecord.status)
            .join(Student, Student.classroom_id == Classroom.id)
            .join(AttendanceRecord, AttendanceRecord.student_id == Student.id)
            .join(Tenant, Tenant.id == Classroom.tenant_id)
            .where(Tenant.slug == slug)
            .order_by(Classroom.name, Student.name, AttendanceRecord.date, AttendanceRecord.period)
        )
        return [tuple(row) for row in rows]


async def test_a_bulk_seed_run_twice_changes_nothing_the_second_time(session_factory):
    prefix = f"b{uuid.uuid4().hex[:8]}"
    today = datetime.now(UTC).date()
    arguments = {"schools": 2, "classes": 2, "students": 3, "days": 2, "prefix": prefix}
    reports: list[SchoolSeeded] = []
    first = await seed_bulk(session_factory=session_factory, today=today, **arguments)
    contents = await bulk_contents(session_factory, f"{prefix}-2")
    assert len(contents) == 2 * 3 * 2 * DEMO_PERIODS
    again = await seed_bulk(
        session_factory=session_factory, today=today, report=reports.append, **arguments
    )
    assert again == first
    assert [(r.slug, r.outcome) for r in reports] == [
        (f"{prefix}-1", "present"),
        (f"{prefix}-2", "present"),
    ]
    assert reports[0].shape == SchoolShape(classes=2, students=3, days=2)
    assert reports[0].marks == len(contents)
    assert await bulk_contents(session_factory, f"{prefix}-2") == contents


async def test_a_school_made_again_is_the_same_whichever_schools_a_run_made_before(
    session_factory,
):
    prefix = f"b{uuid.uuid4().hex[:8]}"
    today = datetime.now(UTC).date()
    arguments = {"classes": 1, "students": 4, "days": 3, "prefix": prefix}
    await seed_bulk(session_factory=session_factory, today=today, schools=2, **arguments)
    second = await bulk_contents(session_factory, f"{prefix}-2")
    # a run stopped after the first school, say: the second is made by a later run alone
    async with session_factory() as session, session.begin():
        await session.execute(delete(Tenant).where(Tenant.slug == f"{prefix}-2"))
    await seed_bulk(session_factory=session_factory, today=today, schools=2, **arguments)
    assert await bulk_contents(session_factory, f"{prefix}-2") == second


async def test_a_bulk_seed_of_another_shape_is_refused_unless_reset(session_factory):
    prefix = f"b{uuid.uuid4().hex[:8]}"
    common = {"session_factory": session_factory, "today": datetime.now(UTC).date()}
    common |= {"schools": 1, "students": 2, "days": 1, "prefix": prefix}
    (before,) = await seed_bulk(classes=1, **common)
    with pytest.raises(SeedConflict, match="--reset"):
        await seed_bulk(classes=2, **common)
    assert len(await bulk_contents(session_factory, f"{prefix}-1")) == 2 * DEMO_PERIODS
    reports: list[SchoolSeeded] = []
    (after,) = await seed_bulk(classes=2, reset=True, report=reports.append, **common)
    assert after != before
    assert [r.outcome for r in reports] == ["dropped", "created"]
    assert reports[0].shape == SchoolShape(classes=1, students=2, days=1)
    assert len(await bulk_contents(session_factory, f"{prefix}-1")) == 4 * DEMO_PERIODS
