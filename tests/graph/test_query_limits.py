"""Abusive documents are refused before anything executes; production hides the schema."""

from __future__ import annotations

import dataclasses

import pytest

from graph.limits import cached_validation
from graph.schema import create_schema
from services.platform.settings import Settings
from tests.factories import api_process, counted_statements, error_codes, gql

ME = "{ me { id } }"


def nested(depth: int) -> str:
    """A query ``depth`` levels deep: classroom → students → node → classroom → …"""
    inner = "id"
    for _ in range(depth):
        inner = f"classroom {{ students(first: 1) {{ edges {{ node {{ {inner} }} }} }} }}"
    return f"{{ me {{ student {{ {inner} }} }} }}"


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (nested(8), "exceeds maximum operation depth"),
        ("{ " + " ".join(f"a{n}: me {{ id }}" for n in range(500)) + " }", "aliases"),
        (
            "mutation { " + " ".join(f"a{n}: markAllNotificationsRead" for n in range(500)) + " }",
            "aliases",
        ),
        (
            'query { classRankings(classroomId: "00000000-0000-0000-0000-000000000000", first: 100000) '
            "{ edges { node { rank } } } }",
            "estimated cost",
        ),
        ("{ me { " + "id " * 6000 + "} }", "token"),
    ],
)
async def test_abusive_documents_are_refused_before_execution(client, factory, document, fragment):
    school = await factory.school(students=1)
    with counted_statements() as statements:
        body = await gql(client, document, token=school.token(school.admin))
    assert "data" not in body or body["data"] is None
    assert fragment in " ".join(error["message"] for error in body["errors"])
    assert {e["extensions"]["code"] for e in body["errors"]} <= {
        "GRAPHQL_VALIDATION_FAILED",
        "GRAPHQL_PARSE_FAILED",
    }
    assert statements == []


async def test_nested_lists_multiply_and_variables_count_as_full_pages(client, factory):
    school = await factory.school(students=1)
    token = school.token(school.admin)
    # 100 students x (node + classroom + 100 students x 2) is far over 5000
    wide = """query Q($n: Int) { classroom(id: "00000000-0000-0000-0000-000000000000") {
      students(first: $n) { edges { node { id classroom { students(first: $n) {
        edges { node { id name } } } } } } } } }"""
    body = await gql(client, wide, {"n": 1}, token=token)
    assert "estimated cost" in body["errors"][0]["message"]
    narrow = wide.replace("$n", "2").replace("query Q(2: Int)", "query Q")
    narrow_body = await gql(client, narrow, token=token)
    assert all("estimated cost" not in e["message"] for e in narrow_body.get("errors", []))


async def test_batches_run_each_operation_and_are_capped(client, factory, settings):
    school = await factory.school(students=1)
    headers = {"authorization": f"Bearer {school.token(school.admin)}"}
    response = await client.post("/graphql", json=[{"query": ME}] * 3, headers=headers)
    assert [item["data"]["me"]["id"] for item in response.json()] == [str(school.admin.id)] * 3
    too_many = await client.post(
        "/graphql", json=[{"query": ME}] * (settings.query_max_batch + 1), headers=headers
    )
    assert too_many.status_code == 400
    assert error_codes(too_many.json()) == ["BAD_REQUEST"]


@pytest.fixture(scope="module")
async def production(settings: Settings):
    production_settings = dataclasses.replace(
        Settings.from_env(
            {
                "ROLLCALL_ENV": "production",
                "ROLLCALL_DATABASE_URL": settings.database_url,
                "ROLLCALL_REDIS_URL": settings.redis_url,
                "ROLLCALL_JWT_SECRET": settings.jwt_secret,
                "ROLLCALL_STORAGE_URL": settings.storage_url,
            }
        ),
    )
    async with api_process(production_settings) as http:
        yield http


async def test_production_has_no_introspection_graphiql_or_suggestions(production, factory):
    school = await factory.school(students=1)
    token = school.token(school.admin)
    introspection = await gql(production, "{ __schema { types { name } } }", token=token)
    assert "introspection" in introspection["errors"][0]["message"].lower()
    typo = await gql(production, "{ me { emial } }", token=token)
    assert "Did you mean" not in typo["errors"][0]["message"]
    assert "emial" in typo["errors"][0]["message"]
    page = await production.get("/graphql", headers={"accept": "text/html"})
    assert "graphiql" not in page.text.lower()


async def test_development_keeps_introspection_and_suggestions(client, factory):
    school = await factory.school(students=1)
    token = school.token(school.admin)
    assert "errors" not in await gql(client, "{ __schema { queryType { name } } }", token=token)
    typo = await gql(client, "{ me { emial } }", token=token)
    assert "Did you mean 'email'?" in typo["errors"][0]["message"]


async def test_a_document_seen_before_is_not_validated_again(client, factory):
    school = await factory.school(students=1)
    document = "query Again { me { id role } }"
    await gql(client, document, token=school.token(school.admin))
    before = cached_validation.cache_info()
    body = await gql(client, document, token=school.token(school.admin))
    after = cached_validation.cache_info()
    assert body["data"]["me"]["role"] == "ADMIN"
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


def test_limits_are_checked_without_the_full_validation():
    # 500 aliases of one field: the full validation compares every pair of them
    aliases = "{ " + " ".join(f"a{n}: me {{ id }}" for n in range(500)) + " }"
    before = cached_validation.cache_info()
    result = create_schema(Settings()).execute_sync(aliases)
    assert result.errors and "aliases" in result.errors[0].message
    assert cached_validation.cache_info().misses == before.misses


async def test_a_batch_shares_one_cost_limit(settings, factory):
    school = await factory.school(students=1)
    token = school.token(school.admin)
    document = "{ " + " ".join(f"a{n}: me {{ id email role }}" for n in range(5)) + " }"  # 20
    cheap = dataclasses.replace(settings, query_max_cost=50)
    async with api_process(cheap) as http:
        with counted_statements() as statements:
            answers = (
                await http.post(
                    "/graphql",
                    json=[{"query": document}] * 4,
                    headers={"authorization": f"Bearer {token}"},
                )
            ).json()
        alone = await gql(http, document, token=token)
    assert [error_codes(answer) for answer in answers[:2]] == [[], []]
    for refused in answers[2:]:
        assert error_codes(refused) == ["GRAPHQL_VALIDATION_FAILED"]
        assert "together cost" in refused["errors"][0]["message"]
    assert error_codes(alone) == []  # the budget is the request's, not the process's
    assert len(statements) < 10
