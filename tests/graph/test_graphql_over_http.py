"""The GraphQL-over-HTTP spec: application/graphql-response+json when the client prefers it,
4xx without ``data`` for a request that never ran, 200 with ``data`` for field errors; and
application/json as before for clients that ask for it. The Guild's own audit (graphql-http's
``auditServer``, pinned in scripts/graphql_http_audit) runs too, where Node.js is installed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from graph.edge.view import prefers_graphql_response
from rollcall.processes import node_packages, running_server
from tests.factories import process_env

MODERN = "application/graphql-response+json"
AUDIT = Path(__file__).resolve().parents[2] / "scripts" / "graphql_http_audit"
REFUSED = [
    ("{ nope", "GRAPHQL_PARSE_FAILED"),
    ("{ noSuchField }", "GRAPHQL_VALIDATION_FAILED"),
    ("query Q($n: Int!) { __typename }", "VALIDATION_ERROR"),  # $n missing: not coerced
]


async def post(client, body, accept: str | None, token: str | None = None):
    headers = {} if accept is None else {"accept": accept}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await client.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize(
    ("accept", "modern"),
    [
        (MODERN, True),
        (f"{MODERN}, application/json;q=0.9", True),
        (f"application/json;q=0.9, {MODERN}", True),
        (f"application/json, {MODERN};q=0.5", False),
        ("application/json", False),
        ("*/*", False),
        (None, False),
        (f"{MODERN};q=0", False),
        (f"{MODERN};q=oops", False),
    ],
)
def test_the_media_type_follows_the_clients_preference(accept, modern):
    assert prefers_graphql_response(accept) is modern


@pytest.mark.parametrize(("document", "code"), REFUSED)
async def test_a_request_that_never_ran_is_a_400_without_data(client, document, code):
    response = await post(client, {"query": document}, MODERN)
    assert response.status_code == 400
    assert response.headers["content-type"] == f"{MODERN}; charset=utf-8"
    body = response.json()
    assert "data" not in body
    assert [error["extensions"]["code"] for error in body["errors"]] == [code]


@pytest.mark.parametrize(("document", "code"), REFUSED)
async def test_application_json_answers_as_it_always_has(client, document, code):
    response = await post(client, {"query": document}, "application/json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == code


async def test_field_errors_are_a_200_with_data(client, factory):
    school = await factory.school(students=2)
    other = str(school.students[1].id)
    query = "query D($id: ID) { studentDashboard(studentId: $id) { attendanceRate } __typename }"
    response = await post(
        client,
        {"query": query, "variables": {"id": other}},
        MODERN,
        token=school.student_token(school.students[0]),
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{MODERN}; charset=utf-8"
    body = response.json()
    assert "data" in body and body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_requests_refused_before_parsing_say_so_in_the_media_type_asked_for(client):
    broken = await client.post(
        "/graphql",
        content=b"{not json",
        headers={"content-type": "application/json", "accept": MODERN},
    )
    assert broken.status_code == 400
    assert broken.headers["content-type"] == f"{MODERN}; charset=utf-8"
    assert "data" not in broken.json()
    mutation = await client.get(
        "/graphql",
        params={"query": "mutation { markAllNotificationsRead }"},
        headers={"accept": MODERN},
    )
    assert mutation.status_code == 405 and mutation.headers["allow"] == "POST"
    assert mutation.headers["content-type"] == f"{MODERN}; charset=utf-8"


async def test_a_batch_keeps_its_200(client):
    response = await post(client, [{"query": "{ __typename }"}, {"query": "{ nope"}], MODERN)
    assert response.status_code == 200
    first, second = response.json()
    assert first == {"data": {"__typename": "Query"}}
    assert "data" not in second


async def test_the_graphql_http_audit_passes_every_must_and_should(settings):
    if (reason := await node_packages(AUDIT)) is not None:
        pytest.skip(reason)
    async with running_server(process_env(settings)) as server:
        auditing = await asyncio.create_subprocess_exec(
            "node",
            "audit.mjs",
            f"{server.base_url}/graphql",
            cwd=AUDIT,
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await asyncio.wait_for(auditing.communicate(), timeout=120)
    results = [json.loads(line) for line in output.decode().splitlines()]
    required = [r for r in results if r["name"].startswith(("MUST", "SHOULD"))]
    assert len(required) >= 36, results  # 13 MUST and 23 SHOULD in graphql-http 1.23
    failed = [f"{r['name']}: {r['reason']}" for r in required if r["status"] != "ok"]
    assert failed == []
