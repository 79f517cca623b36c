"""Rate limits: shared by every API process, counted per operation, told and audited."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from services.models import AuditAction, AuditLog
from services.platform.settings import RateLimit
from tests import files
from tests.factories import PASSWORD, api_process, error_codes
from tests.graph.test_certificates import upload

DASHBOARD = "{ studentDashboard { attendanceRate } }"
LOGIN = """mutation L($t: String!, $e: String!, $p: String!) {
  login(tenant: $t, email: $e, password: $p) { token } }"""


def aliased(count: int) -> str:
    return (
        "{ " + " ".join(f"d{n}: studentDashboard {{ attendanceRate }}" for n in range(count)) + " }"
    )


@pytest.fixture
async def two_processes(settings, redis):
    limited = dataclasses.replace(
        settings, rate_limits_enabled=True, rate_limits={"upload": RateLimit(2, 3600)}
    )
    async with api_process(limited) as first, api_process(limited) as second:
        yield first, second


async def post(http, body, token=None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await http.post("/graphql", json=body, headers=headers)


async def audit_actions(factory, school) -> list[AuditLog]:
    async with factory.session_factory() as session:
        return list(
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.tenant_id == school.tenant.id)
                .order_by(AuditLog.timestamp, AuditLog.id)
            )
        )


async def test_the_101st_dashboard_read_is_refused_whichever_process_or_form(
    two_processes, factory
):
    # given a student who reads 100 times, through aliases, over two processes
    first, second = two_processes
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    remaining = []
    for http in (first, first, second, second):
        response = await post(http, {"query": aliased(25)}, token)
        assert response.status_code == 200 and "errors" not in response.json()
        remaining.append(int(response.headers["ratelimit-remaining"]))
        assert response.headers["ratelimit-limit"] == "100"
    assert remaining == [75, 50, 25, 0]
    # when the 101st comes, alone or batched, on either process
    refused = await post(first, {"query": DASHBOARD}, token)
    batch = await post(second, [{"query": DASHBOARD}] * 3, token)
    # then
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["ratelimit-remaining"] == "0"
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert 0 < error["extensions"]["retryAfter"] <= 60
    assert batch.status_code == 429
    assert [error_codes(item) for item in batch.json()] == [["RATE_LIMIT_EXCEEDED"]] * 3
    # every refusal is audited
    entries = await audit_actions(factory, school)
    assert [e.action for e in entries] == [AuditAction.RATE_LIMIT_EXCEEDED] * 4
    assert all(e.resource_id == "dashboard" and not e.success for e in entries)
    # another user has their own quota
    teacher = await post(first, {"query": "{ me { id } }"}, school.token(school.teachers[0]))
    assert teacher.status_code == 200


async def test_a_request_partly_refused_is_answered_with_what_ran(two_processes, factory):
    first, _ = two_processes
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    for _ in range(4):
        await post(first, {"query": aliased(25)}, token)
    mixed = await post(first, [{"query": "{ me { id } }"}, {"query": DASHBOARD}], token)
    assert mixed.status_code == 200
    assert mixed.json()[0]["data"]["me"]["id"]
    assert error_codes(mixed.json()[1]) == ["RATE_LIMIT_EXCEEDED"]


async def test_the_third_upload_in_an_hour_is_refused(two_processes, factory):
    first, second = two_processes
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    for http in (first, second):
        assert (await upload(http, token, files.pdf())).status_code == 200
    refused = await upload(first, token, files.pdf())
    assert refused.status_code == 429
    assert error_codes(refused.json()) == ["RATE_LIMIT_EXCEEDED"]
    uploads = [
        e for e in await audit_actions(factory, school) if e.action is AuditAction.FILE_UPLOAD
    ]
    assert len(uploads) == 2


async def test_five_failed_logins_lock_the_account_for_a_while(two_processes, factory):
    # given
    first, second = two_processes
    school = await factory.school(students=1)
    slug, email = school.tenant.slug, "admin@school.test"
    # when five attempts fail, on either process
    for attempt in range(5):
        http = (first, second)[attempt % 2]
        body = (
            await post(http, {"query": LOGIN, "variables": {"t": slug, "e": email, "p": "nope"}})
        ).json()
        assert error_codes(body) == ["UNAUTHENTICATED"]
    # then even the right password waits
    locked = await post(
        first, {"query": LOGIN, "variables": {"t": slug, "e": email, "p": PASSWORD}}
    )
    assert locked.status_code == 429
    assert locked.json()["errors"][0]["extensions"]["retryAfter"] > 0
    # and another account of the same school is not affected
    other = await post(
        second,
        {"query": LOGIN, "variables": {"t": slug, "e": "teacher0@school.test", "p": PASSWORD}},
    )
    assert other.json()["data"]["login"]["token"]
    entries = await audit_actions(factory, school)
    failures = [e for e in entries if e.action is AuditAction.LOGIN_FAILURE]
    assert len(failures) == 5
    assert all(e.details == {"email": email, "reason": "wrong_password"} for e in failures)
    assert all(e.user_id == school.admin.id and e.ip_address for e in failures)
    assert [e.action for e in entries][-2:] == [
        AuditAction.RATE_LIMIT_EXCEEDED,
        AuditAction.LOGIN_SUCCESS,
    ]
