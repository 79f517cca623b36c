"""The demo tenant is what the API contract promises."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from services.models import Classroom, TeacherAssignment, Tenant, User
from services.seed import DEMO_PASSWORD, seed_demo
from services.storage import create_store
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
    for edge in roster["edges"]:
        body = await gql(
            client,
            "query D($id: ID) { studentDashboard(studentId: $id) { standing totalClasses } }",
            {"id": edge["node"]["id"]},
            token=token,
        )
        dashboard = body["data"]["studentDashboard"]
        assert dashboard["totalClasses"] == 180  # 30 school days x 6 periods
        standings.add(dashboard["standing"])
    assert standings == {"OK", "WARNING", "TASDIQ", "MAHROOM"}


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
