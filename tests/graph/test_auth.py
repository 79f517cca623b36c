"""Logging in and presenting tokens."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from argon2 import PasswordHasher
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from services.auth import Viewer, decode_token, issue_token
from services.credentials import user_tag
from services.models import AuditAction, AuditLog, Role, User
from services.platform.cache import Cache
from services.platform.settings import DEFAULT_CACHE_TTLS
from tests.factories import PASSWORD, api_process, error_codes, gql

LOGIN = """
mutation Login($tenant: String!, $email: String!, $password: String!) {
  login(tenant: $tenant, email: $email, password: $password) {
    token expiresAt user { id email role tenant { slug } student { id } }
  }
}"""
ME = "query { me { id role student { id } } }"


async def test_login_issues_a_token_that_identifies_the_student(client, factory):
    school = await factory.school(students=1)
    student = school.students[0]
    account = school.accounts[student.id]
    body = await gql(
        client,
        LOGIN,
        {"tenant": school.tenant.slug, "email": account.email.upper(), "password": PASSWORD},
    )
    payload = body["data"]["login"]
    assert payload["user"]["role"] == "STUDENT" and payload["user"]["student"]["id"] == str(
        student.id
    )
    me = await gql(client, ME, token=payload["token"])
    assert me["data"]["me"] == {
        "id": str(account.id),
        "role": "STUDENT",
        "student": {"id": str(student.id)},
    }


async def test_the_login_answer_reads_as_the_account_just_signed_in(client, factory):
    # given a student, and a request carrying another school's admin token
    school = await factory.school(students=1)
    other = await factory.school(students=1)
    email = school.accounts[school.students[0].id].email
    quick_start = """mutation Login($t: String!, $e: String!, $p: String!) {
      login(tenant: $t, email: $e, password: $p) {
        token user { role student { name classroom { name } } } } }"""
    # when the student logs in and asks for their classroom in the same answer (the README's
    # quick start), then it is there, read with the student's own rights
    body = await gql(
        client,
        quick_start,
        {"t": school.tenant.slug, "e": email, "p": PASSWORD},
        token=other.token(other.admin),
    )
    assert "errors" not in body, body
    student = body["data"]["login"]["user"]["student"]
    assert student["classroom"]["name"] == school.classrooms[0].name


@pytest.mark.parametrize("wrong", ["tenant", "email", "password"])
async def test_wrong_credentials_all_look_the_same(client, factory, wrong):
    school = await factory.school(students=0)
    variables = {"tenant": school.tenant.slug, "email": school.admin.email, "password": PASSWORD}
    variables[wrong] = "wrong-" + variables[wrong]
    body = await gql(client, LOGIN, variables)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["message"] == "The tenant, email or password is wrong."


async def test_empty_credentials_are_validation_errors(client):
    body = await gql(client, LOGIN, {"tenant": "x", "email": " ", "password": "p"})
    assert (
        body["errors"][0]["extensions"] | {"code": "VALIDATION_ERROR", "field": "email"}
        == body["errors"][0]["extensions"]
    )


@pytest.mark.parametrize("problem", ["expired", "forged", "garbage", "not bearer"])
async def test_bad_tokens_are_unauthenticated(client, factory, settings, problem):
    school = await factory.school(students=0)
    viewer = Viewer(user_id=school.admin.id, tenant_id=school.tenant.id, role=school.admin.role)
    now = datetime.now(UTC)
    header = {
        "expired": "Bearer "
        + issue_token(
            viewer, secret=settings.jwt_secret, ttl_seconds=60, now=now - timedelta(hours=1)
        ),
        "forged": "Bearer " + issue_token(viewer, secret="x" * 40, ttl_seconds=60, now=now),
        "garbage": "Bearer " + jwt.encode({"sub": "nope"}, settings.jwt_secret, algorithm="HS256"),
        "not bearer": "Basic dXNlcjpwYXNz",
    }[problem]
    response = await client.post("/graphql", json={"query": ME}, headers={"authorization": header})
    body = response.json()
    assert body["data"] is None
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_a_staff_account_has_no_default_student(client, factory):
    school = await factory.school(students=1)
    body = await gql(
        client, "{ studentDashboard { attendanceRate } }", token=school.token(school.teachers[0])
    )
    assert body["errors"][0]["extensions"]["field"] == "studentId"


CHANGE = """mutation C($current: String!, $new: String!) {
  changePassword(currentPassword: $current, newPassword: $new) }"""


async def password_entries(factory, school) -> list[AuditLog]:
    async with factory.session_factory() as session:
        return list(
            await session.scalars(
                select(AuditLog).where(
                    AuditLog.tenant_id == school.tenant.id,
                    AuditLog.action == AuditAction.PASSWORD_CHANGE,
                )
            )
        )


async def log_in(client, school, email: str, password: str) -> dict:
    return await gql(
        client, LOGIN, {"tenant": school.tenant.slug, "email": email, "password": password}
    )


async def test_a_password_change_replaces_the_password_and_is_audited(client, factory):
    school = await factory.school(students=1)
    teacher = school.teachers[0]
    new = "a much longer passphrase"
    body = await gql(client, CHANGE, {"current": PASSWORD, "new": new}, token=school.token(teacher))
    assert body == {"data": {"changePassword": True}}
    assert error_codes(await log_in(client, school, teacher.email, PASSWORD)) == ["UNAUTHENTICATED"]
    assert "errors" not in await log_in(client, school, teacher.email, new)
    [entry] = await password_entries(factory, school)
    assert (entry.user_id, entry.success, str(entry.ip_address)) == (teacher.id, True, "127.0.0.1")


async def test_a_password_change_ends_every_session_begun_before_it(client, settings, factory):
    # given a teacher signed in twice, one token already checked by a second API process
    school = await factory.school(students=1)
    teacher = school.teachers[0]
    first = (await log_in(client, school, teacher.email, PASSWORD))["data"]["login"]["token"]
    second = school.token(teacher)
    async with api_process(settings) as other:
        assert "errors" not in await gql(other, ME, token=second)
        # when the password is changed through the first process
        new = "a much longer passphrase"
        changed = await gql(client, CHANGE, {"current": PASSWORD, "new": new}, token=first)
        assert changed == {"data": {"changePassword": True}}
        # then both earlier tokens are refused by both processes, at once
        for api in (client, other):
            for token in (first, second):
                refused = await gql(api, ME, token=token)
                assert error_codes(refused) == ["UNAUTHENTICATED"]
                assert "password was changed" in refused["errors"][0]["message"]
        # and a token from signing in again works everywhere
        fresh = (await log_in(client, school, teacher.email, new))["data"]["login"]["token"]
        for api in (client, other):
            assert (await gql(api, ME, token=fresh))["data"]["me"]["id"] == str(teacher.id)


async def test_tokens_of_a_disabled_account_are_refused(client, factory):
    school = await factory.school(students=1)
    teacher = school.teachers[0]
    async with factory.session_factory() as session, session.begin():
        await session.execute(update(User).where(User.id == teacher.id).values(active=False))
    refused = await gql(client, ME, token=school.token(teacher))
    assert error_codes(refused) == ["UNAUTHENTICATED"]


def test_a_token_from_before_millisecond_issue_times_is_dated_by_its_second(settings):
    issued = datetime.now(UTC).replace(microsecond=750_000)
    second = int(issued.timestamp())
    claims = jwt.decode(
        issue_token(
            Viewer(user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role=Role.TEACHER),
            secret=settings.jwt_secret,
            ttl_seconds=60,
            now=issued,
        ),
        options={"verify_signature": False},
    )
    assert claims["iat_ms"] == second * 1000 + 750
    del claims["iat_ms"]
    older = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    assert decode_token(older, secret=settings.jwt_secret).issued_at_ms == second * 1000


async def test_a_wrong_current_password_changes_nothing_and_is_audited(client, factory):
    school = await factory.school(students=1)
    teacher = school.teachers[0]
    body = await gql(
        client,
        CHANGE,
        {"current": "not it", "new": "a much longer passphrase"},
        token=school.token(teacher),
    )
    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert body["errors"][0]["extensions"]["field"] == "currentPassword"
    assert "errors" not in await log_in(client, school, teacher.email, PASSWORD)
    [entry] = await password_entries(factory, school)
    assert (entry.success, entry.details) == (False, {"reason": "wrong_current_password"})


@settings(max_examples=25)
@given(
    new=st.one_of(
        st.text(max_size=11),
        st.text(min_size=129, max_size=200),
        st.just(" " * 20),
        st.just(PASSWORD),
    )
)
async def test_unusable_new_passwords_are_refused_before_anything_is_checked(client, factory, new):
    school = await factory.school(students=1)
    body = await gql(
        client, CHANGE, {"current": PASSWORD, "new": new}, token=school.token(school.admin)
    )
    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert body["errors"][0]["extensions"]["field"] == "newPassword"
    assert await password_entries(factory, school) == []
    assert "errors" not in await log_in(client, school, school.admin.email, PASSWORD)


async def test_guessing_the_current_password_meets_the_login_limit(settings, factory, redis):
    school = await factory.school(students=1)
    token = school.token(school.admin)
    limited = dataclasses.replace(settings, rate_limits_enabled=True, rate_limits={})
    async with api_process(limited) as http:
        for guess in range(5):
            body = await gql(
                http, CHANGE, {"current": f"guess {guess}", "new": "x" * 20}, token=token
            )
            assert error_codes(body) == ["VALIDATION_ERROR"]
        body = await gql(http, CHANGE, {"current": PASSWORD, "new": "x" * 20}, token=token)
        assert error_codes(body) == ["RATE_LIMIT_EXCEEDED"]
        assert body["errors"][0]["extensions"]["retryAfter"] > 0
    entries = await password_entries(factory, school)
    assert [entry.success for entry in entries] == [False] * 5


async def test_changing_a_password_needs_a_token(client):
    body = await gql(client, CHANGE, {"current": PASSWORD, "new": "x" * 20})
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_a_login_replaces_a_hash_made_with_older_settings(client, factory):
    # given an account whose hash was made with argon2-cffi's heavier defaults
    school = await factory.school(students=1)
    teacher = school.teachers[0]
    old = PasswordHasher().hash(PASSWORD)
    async with factory.session_factory() as session, session.begin():
        await session.execute(update(User).where(User.id == teacher.id).values(password_hash=old))
    # when its owner logs in
    assert "errors" not in await log_in(client, school, teacher.email, PASSWORD)
    # then the hash is today's, and the password still works
    async with factory.session_factory() as session:
        stored = await session.scalar(select(User.password_hash).where(User.id == teacher.id))
    assert stored != old and stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "errors" not in await log_in(client, school, teacher.email, PASSWORD)


AUDIT = "{ auditLogs(first: 1) { totalCount } }"
REFUSED = {Role.PARTNER: "PERSISTED_QUERY_NOT_IN_LIST"}


def claiming(factory, user: User, role: Role, student_id: uuid.UUID | None) -> str:
    """A validly signed token for ``user`` that claims ``role`` and ``student_id``."""
    viewer = Viewer(user_id=user.id, tenant_id=user.tenant_id, role=role, student_id=student_id)
    return issue_token(viewer, secret=factory.secret, ttl_seconds=3600, now=datetime.now(UTC))


async def test_a_token_re_signed_with_another_role_is_refused(client, factory):
    school = await factory.school(students=2)
    student = school.students[0]
    account = school.accounts[student.id]
    forged = claiming(factory, account, Role.ADMIN, student.id)
    for document in (AUDIT, ME):
        assert error_codes(await gql(client, document, token=forged)) == ["UNAUTHENTICATED"]
    assert error_codes(await gql(client, ME, token=school.student_token(student))) == []


async def test_a_token_naming_another_student_is_refused(client, factory):
    school = await factory.school(students=2)
    mine, theirs = school.students
    forged = factory.issue(school.accounts[mine.id], student_id=theirs.id)
    dashboard = "{ studentDashboard { studentId } }"
    assert error_codes(await gql(client, dashboard, token=forged)) == ["UNAUTHENTICATED"]


@settings(max_examples=20, deadline=None)
@given(role=st.sampled_from(list(Role)), linked=st.booleans())
async def test_only_the_accounts_own_claims_are_accepted(client, factory, role, linked):
    school = await factory.school(students=1)
    student = school.students[0]
    account = school.accounts[student.id]
    token = claiming(factory, account, role, student.id if linked else None)
    own = role is Role.STUDENT and linked
    body = await gql(client, ME, token=token)
    # A PARTNER claim is refused sooner: partners run registered documents only.
    assert error_codes(body) == ([] if own else [REFUSED.get(role, "UNAUTHENTICATED")])


async def test_a_role_change_takes_effect_at_the_next_request(client, factory, redis):
    school = await factory.school(students=1)
    teacher = school.teachers[0]
    token = school.token(teacher)
    assert error_codes(await gql(client, ME, token=token)) == []
    async with factory.session_factory() as session, session.begin():
        await session.execute(update(User).where(User.id == teacher.id).values(role=Role.ADMIN))
    # What an account change does once committed (services.logins, password_resets).
    cache = Cache(redis=redis, ttls=DEFAULT_CACHE_TTLS)
    await cache.invalidate(tenant_id=school.tenant.id, tags=[user_tag(teacher.id)])
    assert error_codes(await gql(client, AUDIT, token=token)) == ["UNAUTHENTICATED"]
