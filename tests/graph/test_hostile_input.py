"""Text the database cannot store and dates the arithmetic cannot reach are refused at the edge
as VALIDATION_ERROR naming the argument, for every String and Date/DateTime at once, before
anything runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import counted_statements, error_codes, gql

LOGIN = "mutation L($t: String!, $e: String!, $p: String!) { login(tenant: $t, email: $e, password: $p) { token } }"
REVIEW = "mutation R($id: ID!, $reason: String) { reviewMedicalCertificate(id: $id, decision: REJECTED, reason: $reason) { id } }"
WEEK = "query W($d: Date!) { weeklyAttendance(weekStart: $d) { weekStart } }"
AUDIT = "query A($f: AuditLogFilter) { auditLogs(filter: $f) { totalCount } }"
MARK = (
    "mutation M($input: MarkAttendanceInput!) { markAttendance(input: $input) { records { id } } }"
)
HOSTILE = ["a\x00b", "\ud800", "ok\udfffok", "\x00"]
ARGUMENT = {"t": "tenant", "e": "email", "p": "password"}  # what each variable is given to


async def post_raw(client, query: str, variables: dict, token: str | None = None) -> dict:
    """The body as JSON with ASCII escapes: a lone surrogate travels as ``\\ud800``."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    content = json.dumps({"query": query, "variables": variables})
    response = await client.post("/graphql", content=content, headers=headers)
    assert response.status_code == 200
    return response.json()


def refused(body: dict, field: str) -> None:
    assert error_codes(body) == ["VALIDATION_ERROR"], body
    assert body["errors"][0]["extensions"]["field"] == field
    assert body.get("data") is None


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("name", ["t", "e", "p"])
async def test_login_refuses_text_it_cannot_store(client, name, text):
    variables = {"t": "demo", "e": "a@b.c", "p": "secret", name: text}
    with counted_statements() as statements:
        body = await post_raw(client, LOGIN, variables)
    refused(body, ARGUMENT[name])
    assert statements == []


async def test_a_review_reason_with_nul_is_refused(client, factory):
    school = await factory.school(students=1)
    variables = {"id": "00000000-0000-0000-0000-000000000000", "reason": "no\x00"}
    refused(await post_raw(client, REVIEW, variables, school.token(school.admin)), "reason")


async def test_nested_variables_name_their_path(client, factory):
    school = await factory.school(students=1)
    variables = school.absence_today(school.students[0])
    variables["input"]["marks"][0]["studentId"] = "\ud800"
    body = await post_raw(client, MARK, variables, school.token(school.teachers[0]))
    refused(body, "input.marks[0].studentId")


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ('mutation { login(tenant: "a\\u0000", email: "e", password: "p") { token } }', "tenant"),
        ('{ weeklyAttendance(weekStart: "9999-12-31") { weekStart } }', "weekStart"),
        (
            '{ auditLogs(filter: {from: "0001-01-01T00:00:00+14:00"}) { totalCount } }',
            "filter.from",
        ),
        ('{ auditLogs(filter: {to: "9999-12-31T23:59:59-12:00"}) { totalCount } }', "filter.to"),
    ],
)
async def test_literals_are_refused_naming_their_argument(client, factory, document, field):
    school = await factory.school(students=1)
    with counted_statements() as statements:
        body = await gql(client, document, token=school.token(school.admin))
    refused(body, field)
    assert statements == []


@pytest.mark.parametrize(
    ("document", "variables", "field"),
    [
        (WEEK, {"d": "9999-12-31"}, "d"),
        (WEEK, {"d": "0001-01-01"}, "d"),
        (AUDIT, {"f": {"from": "0001-01-01T00:00:00+14:00"}}, "f"),
    ],
)
async def test_dates_out_of_bounds_are_refused(client, factory, document, variables, field):
    school = await factory.school(students=1)
    body = await gql(client, document, variables, token=school.token(school.admin))
    assert error_codes(body) == ["VALIDATION_ERROR"], body
    assert body["errors"][0]["extensions"]["field"].startswith(field)


@pytest.mark.parametrize("day", ["0001-01-01", "1990-05-05", "last year"])
async def test_a_register_is_not_taken_before_its_school_year(client, factory, day):
    school = await factory.school(students=1)
    variables = school.absence_today(school.students[0])
    if day == "last year":
        day = (datetime.now(UTC).date() - timedelta(days=367)).isoformat()
    variables["input"]["date"] = day
    body = await gql(client, MARK, variables, token=school.token(school.teachers[0]))
    assert error_codes(body) == ["VALIDATION_ERROR"], body
    assert body["errors"][0]["extensions"]["field"] in {"input", "input.date", "date"}


@settings(max_examples=40, deadline=None)
@given(
    st.text(min_size=0, max_size=20),
    st.sampled_from(["\x00", "\ud800", "\udc00", "\udbff\udbff"]),
    st.sampled_from(["t", "e", "p"]),
)
async def test_no_hostile_text_reaches_the_database(client, text, poison, name):
    variables = {"t": "demo", "e": "a@b.c", "p": "secret"}
    variables[name] = text[: len(text) // 2] + poison + text[len(text) // 2 :]
    body = await post_raw(client, LOGIN, variables)
    refused(body, ARGUMENT[name])


async def test_an_unused_variable_is_named_itself(client):
    query = "query Q($spare: String) { __typename }"
    refused(await post_raw(client, query, {"spare": "\x00"}), "spare")
