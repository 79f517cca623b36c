"""Logging in and presenting tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from services.auth import Viewer, issue_token
from tests.factories import PASSWORD, error_codes, gql

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
