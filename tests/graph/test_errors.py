"""Every error carries code, requestId and timestamp; unexpected ones are masked in production."""

from __future__ import annotations

from datetime import datetime

import pytest
from graphql import GraphQLError, GraphQLSyntaxError, Source
from hypothesis import given
from hypothesis import strategies as st

from graph.errors import INTERNAL_MESSAGE, format_error
from services.platform.errors import Forbidden, Invalid, NotFound, Unauthenticated
from tests.factories import gql

errors = st.one_of(
    st.builds(
        lambda f, m: GraphQLError(m, original_error=Invalid(f, m)), st.text(min_size=1), st.text()
    ),
    st.builds(lambda m: GraphQLError(m, original_error=Forbidden(m)), st.text()),
    st.builds(lambda m: GraphQLError(m, original_error=NotFound(m)), st.text()),
    st.builds(lambda m: GraphQLError(m, original_error=Unauthenticated(m)), st.text()),
    st.builds(lambda m: GraphQLError(m, original_error=RuntimeError(m)), st.text()),
    st.builds(lambda m: GraphQLError(m), st.text()),
    st.just(GraphQLSyntaxError(Source("{"), 1, "Expected Name")),
)


@given(errors, st.booleans())
def test_every_error_is_structured(error, production):
    formatted = format_error(error, request_id="req_1", production=production).formatted
    extensions = formatted["extensions"]
    assert isinstance(formatted["message"], str)
    assert isinstance(extensions["code"], str) and extensions["code"]
    assert extensions["requestId"] == "req_1"
    datetime.fromisoformat(extensions["timestamp"])
    if isinstance(error.original_error, Invalid):
        assert extensions["code"] == "VALIDATION_ERROR"
        assert extensions["field"] == error.original_error.field


@pytest.mark.parametrize(
    ("production", "shown"), [(True, INTERNAL_MESSAGE), (False, "db password is hunter2")]
)
def test_unexpected_errors_are_masked_in_production(production, shown):
    error = GraphQLError(
        "db password is hunter2", original_error=RuntimeError("db password is hunter2")
    )
    formatted = format_error(error, request_id="r", production=production).formatted
    assert formatted["extensions"]["code"] == "INTERNAL_ERROR"
    assert formatted["message"] == shown


async def test_request_id_is_accepted_and_echoed(client):
    response = await client.post(
        "/graphql", json={"query": "{ me { id } }"}, headers={"x-request-id": "abc-123"}
    )
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["errors"][0]["extensions"]["requestId"] == "abc-123"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{ me { id ", "GRAPHQL_PARSE_FAILED"),
        ("{ me { nope } }", "GRAPHQL_VALIDATION_FAILED"),
        ("query Q($d: Date!) { weeklyAttendance(weekStart: $d) { weekEnd } }", "VALIDATION_ERROR"),
    ],
)
async def test_document_problems_are_structured(client, factory, query, code):
    school = await factory.school(students=1)
    body = await gql(
        client, query, {"d": "not-a-date"}, token=school.student_token(school.students[0])
    )
    [error] = body["errors"]
    assert error["extensions"]["code"] == code
    assert error["extensions"]["requestId"].startswith("req_")


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"query": 5}', b'{"query": "{ me { id } }", "variables": "x"}', b"{}"],
)
async def test_malformed_requests_are_refused_without_a_crash(client, body):
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize(
    ("method", "request_options"),
    [
        ("POST", {"json": {"query": "subscription { notificationReceived { id } }"}}),
        ("GET", {"params": {"query": "subscription { notificationReceived { id } }"}}),
        ("GET", {"params": {"query": "mutation { markAllNotificationsRead }"}}),
        ("POST", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ],
)
async def test_requests_refused_whole_get_a_structured_error(client, method, request_options):
    """Subscriptions run only over the websocket; over HTTP they, like bad JSON or a mutation
    over GET, are refused before anything runs, with a GraphQL error body."""
    response = await client.request(method, "/graphql", **request_options)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert error["message"]
