"""The audit log: exactly one entry per audited action, readable by admins only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests import files
from tests.factories import PASSWORD, Factory, School, error_codes, gql
from tests.graph.test_certificates import upload

AUDIT = """query A($filter: AuditLogFilter, $first: Int, $after: String) {
  auditLogs(filter: $filter, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id userId action resource resourceId success ipAddress userAgent timestamp metadata } }
  }
}"""
LOGIN = """mutation L($t: String!, $e: String!, $p: String!) {
  login(tenant: $t, email: $e, password: $p) { token } }"""
CHANGE = """mutation C($current: String!, $new: String!) {
  changePassword(currentPassword: $current, newPassword: $new) }"""
EXPORT = """mutation E($input: ExportInput!) { requestExport(input: $input) { id } }"""
PREFERENCES = """mutation P($on: Boolean!) {
  updateNotificationPreferences(input: {emailEnabled: $on}) { emailEnabled } }"""


async def entries(client, school: School, **filter_) -> list[dict]:
    found, after = [], None
    while True:
        body = await gql(
            client,
            AUDIT,
            {"filter": filter_ or None, "first": 7, "after": after},
            token=school.token(school.admin),
        )
        page = body["data"]["auditLogs"]
        found += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


async def test_only_admins_read_the_audit_log(client, factory):
    school = await factory.school(students=1)
    for token in (school.student_token(school.students[0]), school.token(school.teachers[0])):
        assert error_codes(await gql(client, AUDIT, token=token)) == ["FORBIDDEN"]
    assert "errors" not in await gql(client, AUDIT, token=school.token(school.admin))


async def do(
    client, factory, school: School, action: str, actor, passwords: dict
) -> tuple[str, object, bool] | None:
    """Perform one action as ``actor`` (whose current password ``passwords`` tracks); the
    (action, user, success) it must leave, if any."""
    current = passwords.get(actor.id, PASSWORD)
    token = school.tokens[_key(school, actor)]
    if action == "login":
        body = await gql(client, LOGIN, {"t": school.tenant.slug, "e": actor.email, "p": current})
        assert "errors" not in body
        return ("LOGIN_SUCCESS", actor.id, True)
    if action == "password":
        passwords[actor.id] = new = current + "!"
        body = await gql(client, CHANGE, {"current": current, "new": new}, token=token)
        assert "errors" not in body
        # The change ended the actor's session: they go on with a token issued after it.
        key = _key(school, actor)
        student_id = key if key != actor.id else None
        school.tokens[key] = factory.issue(actor, student_id)
        return ("PASSWORD_CHANGE", actor.id, True)
    if action == "bad_password":
        body = await gql(client, CHANGE, {"current": "wrong", "new": "x" * 20}, token=token)
        assert error_codes(body) == ["VALIDATION_ERROR"]
        return ("PASSWORD_CHANGE", actor.id, False)
    if action == "bad_login":
        body = await gql(client, LOGIN, {"t": school.tenant.slug, "e": actor.email, "p": "wrong"})
        assert error_codes(body) == ["UNAUTHENTICATED"]
        return ("LOGIN_FAILURE", actor.id, False)
    if action in {"export", "bad_export"}:
        to = "2026-10-09" if action == "export" else "2026-10-01"
        body = await gql(
            client,
            EXPORT,
            {"input": {"format": "CSV", "from": "2026-10-05", "to": to}},
            token=token,
        )
        if action == "bad_export":
            assert error_codes(body) == ["VALIDATION_ERROR"]
            return None
        assert "errors" not in body
        return ("DATA_EXPORT", actor.id, True)
    if action == "preferences":
        body = await gql(client, PREFERENCES, {"on": False}, token=token)
        assert "errors" not in body
        return ("PROFILE_UPDATE", actor.id, True)
    if action == "upload":
        student = school.students[0]
        response = await upload(client, school.student_token(student), files.pdf())
        assert "errors" not in response.json()
        return ("FILE_UPLOAD", school.accounts[student.id].id, True)
    response = await upload(client, school.student_token(school.students[0]), files.executable())
    assert error_codes(response.json()) == ["VALIDATION_ERROR"]
    return None  # refused input changes nothing, the audit log included


def _key(school: School, user) -> object:
    for key, account in school.accounts.items():
        if account.id == user.id:
            return key
    return user.id


@hypothesis_settings(max_examples=12)
@given(
    plan=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "login",
                    "bad_login",
                    "password",
                    "bad_password",
                    "export",
                    "bad_export",
                    "preferences",
                    "upload",
                    "bad_upload",
                ]
            ),
            st.integers(min_value=0, max_value=2),
        ),
        min_size=1,
        max_size=6,
    )
)
async def test_each_audited_action_has_exactly_one_entry(client, factory, fresh_school, plan):
    school: School = await fresh_school()
    people = [school.admin, school.teachers[0], school.accounts[school.students[0].id]]
    started = datetime.now(UTC) - timedelta(seconds=1)
    expected, passwords = [], {}
    for action, who in plan:
        if (
            outcome := await do(client, factory, school, action, people[who], passwords)
        ) is not None:
            expected.append(outcome)
    found = await entries(client, school)
    assert sorted((e["action"], e["userId"], e["success"]) for e in found) == sorted(
        (action, str(user), success) for action, user, success in expected
    )
    for entry in found:
        assert entry["ipAddress"] == "127.0.0.1"
        assert datetime.fromisoformat(entry["timestamp"]) >= started
        assert entry["resource"]
    for entry in (e for e in found if e["action"] == "DATA_EXPORT"):
        assert {"format", "from", "to"} <= set(entry["metadata"])
    uploads = [e for e in found if e["action"] == "FILE_UPLOAD"]
    for entry in uploads:
        assert {"fileName", "size", "contentType", "status", "uploadedAt"} <= set(entry["metadata"])


async def test_filters_narrow_the_log(client, factory):
    school = await factory.school(students=1)
    admin = school.admin
    for password in ("wrong", PASSWORD, "wrong"):
        await gql(client, LOGIN, {"t": school.tenant.slug, "e": admin.email, "p": password})
    await gql(client, PREFERENCES, {"on": True}, token=school.token(school.teachers[0]))
    assert len(await entries(client, school)) == 4
    assert len(await entries(client, school, action="LOGIN_FAILURE")) == 2
    assert len(await entries(client, school, success=True)) == 2
    assert len(await entries(client, school, userId=str(school.teachers[0].id))) == 1
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await entries(client, school, **{"from": future}) == []
    backwards = await gql(
        client,
        AUDIT,
        {"filter": {"from": future, "to": datetime.now(UTC).isoformat()}},
        token=school.token(admin),
    )
    assert error_codes(backwards) == ["VALIDATION_ERROR"]
    reasons = [
        e["metadata"]["reason"] for e in await entries(client, school, action="LOGIN_FAILURE")
    ]
    assert reasons == ["wrong_password", "wrong_password"]


async def test_tenants_never_see_each_others_entries(client, factory):
    mine, theirs = await factory.school(students=1), await factory.school(students=1)
    await gql(client, LOGIN, {"t": theirs.tenant.slug, "e": theirs.admin.email, "p": PASSWORD})
    assert await entries(client, mine) == []
    assert len(await entries(client, theirs)) == 1


@pytest.fixture
def fresh_school(factory: Factory):
    """A new school per hypothesis example (function fixtures are shared between examples)."""
    return lambda: factory.school(students=1)
