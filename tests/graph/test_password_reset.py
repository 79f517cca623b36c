"""Setting a password by emailed link: a new student gets their first password and a working
dashboard; the token is single-use, expires, is kept hashed, and the request never tells
whether the account exists."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select, update

from services.models import AuditAction, AuditLog, PasswordReset, User
from services.platform.settings import RateLimit
from tests.factories import School, api_process, error_codes, gql, run_jobs

CREATE_STUDENT = """mutation CreateStudent($input: CreateStudentInput!) {
  createStudent(input: $input) { id }
}"""
REQUEST = """mutation RequestReset($tenant: String!, $email: String!) {
  requestPasswordReset(tenant: $tenant, email: $email)
}"""
RESET = """mutation Reset($token: String!, $password: String!) {
  resetPassword(token: $token, newPassword: $password)
}"""
LOGIN = """mutation Login($tenant: String!, $email: String!, $password: String!) {
  login(tenant: $tenant, email: $email, password: $password) { token user { email } }
}"""
DASHBOARD = "{ studentDashboard { attendanceRate standing classSize } }"
NEW_PASSWORD = "a long new password 42"
LINK = re.compile(r"password reset link for (\S+): (\S+)")


def links(caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    found = {}
    for record in caplog.records:
        if match := LINK.search(record.getMessage()):
            found[match[1]] = match[2]
    return found


async def reset_link(client, factory, caplog, school: School, email: str) -> str:
    caplog.clear()
    body = await gql(client, REQUEST, {"tenant": school.tenant.slug, "email": email})
    assert body == {"data": {"requestPasswordReset": True}}
    with caplog.at_level(logging.INFO, logger="jobs.administration"):
        await run_jobs(factory.settings)
    return links(caplog)[email]


def token_of(link: str) -> str:
    return link.split("#reset=", 1)[1]


async def log_in(client, school: School, email: str, password: str) -> dict:
    variables = {"tenant": school.tenant.slug, "email": email, "password": password}
    return await gql(client, LOGIN, variables)


@pytest.fixture
async def school(factory):
    return await factory.school(classrooms=1, students=2)


async def test_a_new_student_sets_a_password_by_the_link_and_uses_their_dashboard(
    client, factory, caplog, school
):
    email = "newcomer@school.test"
    room = str(school.classrooms[0].id)
    created = await gql(
        client,
        CREATE_STUDENT,
        {"input": {"name": "Newcomer", "email": email, "classroomId": room}},
        token=school.token(school.admin),
    )
    assert "errors" not in created, created
    link = await reset_link(client, factory, caplog, school, email)
    assert link.startswith("http://rollcall.test/#reset=")
    token = token_of(link)
    async with factory.session_factory() as session:
        kept = await session.scalar(select(PasswordReset.token_hash))
        rows = list(await session.scalars(select(PasswordReset.token_hash)))
    assert hashlib.sha256(token.encode()).hexdigest() in rows and token not in rows and kept

    assert await gql(client, RESET, {"token": token, "password": NEW_PASSWORD}) == {
        "data": {"resetPassword": True}
    }
    login = await log_in(client, school, email, NEW_PASSWORD)
    assert "errors" not in login, login
    dashboard = await gql(client, DASHBOARD, token=login["data"]["login"]["token"])
    assert dashboard["data"]["studentDashboard"] == {
        "attendanceRate": 100.0,
        "standing": "OK",
        "classSize": 3,
    }
    again = await gql(client, RESET, {"token": token, "password": "another new password"})
    assert [e["extensions"].get("field") for e in again["errors"]] == ["token"]


async def test_a_reset_ends_older_sessions_and_older_links(client, factory, caplog, school):
    student = school.students[0]
    email = school.accounts[student.id].email
    old_session = school.student_token(student)
    first = token_of(await reset_link(client, factory, caplog, school, email))
    second = token_of(await reset_link(client, factory, caplog, school, email))
    refused = await gql(client, RESET, {"token": first, "password": NEW_PASSWORD})
    assert [e["extensions"].get("field") for e in refused["errors"]] == ["token"]
    assert "errors" not in await gql(client, RESET, {"token": second, "password": NEW_PASSWORD})
    assert error_codes(await gql(client, DASHBOARD, token=old_session)) == ["UNAUTHENTICATED"]
    assert "errors" not in await log_in(client, school, email, NEW_PASSWORD)
    async with factory.session_factory() as session:
        actions = list(
            await session.execute(
                select(AuditLog.action, AuditLog.success)
                .where(AuditLog.tenant_id == school.tenant.id, AuditLog.user_id.is_not(None))
                .order_by(AuditLog.id)
            )
        )
    assert [tuple(row) for row in actions] == [
        (AuditAction.PASSWORD_RESET_REQUEST, True),
        (AuditAction.PASSWORD_RESET_REQUEST, True),
        (AuditAction.PASSWORD_CHANGE, False),
        (AuditAction.PASSWORD_CHANGE, True),
        (AuditAction.LOGIN_SUCCESS, True),
    ]


async def test_an_expired_link_sets_nothing(client, factory, caplog, school):
    email = school.accounts[school.students[0].id].email
    token = token_of(await reset_link(client, factory, caplog, school, email))
    async with factory.session_factory() as session, session.begin():
        await session.execute(
            update(PasswordReset).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    refused = await gql(client, RESET, {"token": token, "password": NEW_PASSWORD})
    assert [e["extensions"].get("field") for e in refused["errors"]] == ["token"]
    assert error_codes(await log_in(client, school, email, NEW_PASSWORD)) == ["UNAUTHENTICATED"]


async def test_an_unknown_account_gets_the_same_answer_and_no_link(client, factory, caplog, school):
    caplog.clear()
    for tenant, email in ((school.tenant.slug, "nobody@school.test"), ("no-such-school", "a@b.c")):
        body = await gql(client, REQUEST, {"tenant": tenant, "email": email})
        assert body == {"data": {"requestPasswordReset": True}}
    with caplog.at_level(logging.INFO, logger="jobs.administration"):
        await run_jobs(factory.settings)
    assert links(caplog) == {}
    async with factory.session_factory() as session:
        failures = list(
            await session.scalars(
                select(AuditLog.details).where(
                    AuditLog.tenant_id == school.tenant.id,
                    AuditLog.action == AuditAction.PASSWORD_RESET_REQUEST,
                )
            )
        )
    assert failures == [{"email": "nobody@school.test", "reason": "unknown_or_inactive_user"}]


@pytest.mark.parametrize("password", ["short", " " * 20, "x" * 129])
async def test_unusable_passwords_are_refused_before_the_token_is_spent(
    client, factory, caplog, school, password
):
    email = school.accounts[school.students[0].id].email
    token = token_of(await reset_link(client, factory, caplog, school, email))
    body = await gql(client, RESET, {"token": token, "password": password})
    assert [e["extensions"].get("field") for e in body["errors"]] == ["newPassword"]
    assert "errors" not in await gql(client, RESET, {"token": token, "password": NEW_PASSWORD})


async def test_requests_are_limited_per_account_whether_or_not_it_exists(settings, factory, redis):
    limited = dataclasses.replace(
        settings,
        rate_limits_enabled=True,
        rate_limits={"password_reset": RateLimit(2, 3600), "password_reset_ip": RateLimit(50, 60)},
    )
    school = await factory.school(students=1)
    async with api_process(limited) as client:
        for email in (school.accounts[school.students[0].id].email, "nobody@school.test"):
            variables = {"tenant": school.tenant.slug, "email": email}
            answers = [error_codes(await gql(client, REQUEST, variables)) for _ in range(3)]
            assert answers == [[], [], ["RATE_LIMIT_EXCEEDED"]]


async def test_the_link_goes_by_email_when_smtp_is_configured(
    settings, factory, school, smtp, redis
):
    port, inbox = smtp  # ``redis``: no other test's queued mail is sent here
    mailing = dataclasses.replace(
        settings,
        smtp_url=f"smtp://127.0.0.1:{port}?starttls=false",
        public_url="https://school.example",
    )
    email = school.accounts[school.students[0].id].email
    async with api_process(mailing) as client:
        body = await gql(client, REQUEST, {"tenant": school.tenant.slug, "email": email})
        assert body == {"data": {"requestPasswordReset": True}}
        await run_jobs(mailing)
        ((recipients, message),) = inbox.messages
        assert recipients == [email]
        text = message_from_bytes(message, policy=policy.default).get_content()
        (link,) = re.findall(r"https://school\.example/#reset=\S+", text)
        reset = await gql(client, RESET, {"token": token_of(link), "password": NEW_PASSWORD})
        assert reset == {"data": {"resetPassword": True}}
    async with factory.session_factory() as session:
        user = await session.get(User, school.accounts[school.students[0].id].id)
    assert user.password_hash is not None
