"""Trusted documents: partner tokens (and, as configured, everyone) run registered documents
only, named by hash or sent whole; unregistered ones are refused before anything runs."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import uuid

import orjson

from services.platform.settings import TrustMode
from tests.factories import api_process, counted_statements, error_codes


def unique_document() -> str:
    """A document no other test registers (documents are deployment-wide)."""
    return f"query Me{uuid.uuid4().hex} {{ me {{ id role }} }}"


def extension(document: str) -> dict:
    return {
        "persistedQuery": {
            "version": 1,
            "sha256Hash": hashlib.sha256(document.encode()).hexdigest(),
        }
    }


async def test_a_partner_runs_only_registered_documents(client, factory, redis):
    school = await factory.school(students=1)
    headers = {"authorization": f"Bearer {await factory.partner(school)}"}
    allowed, other = unique_document(), unique_document()
    await factory.trust(allowed)
    # given a registered document, sent whole or by hash (over POST and GET)
    whole = await client.post("/graphql", json={"query": allowed}, headers=headers)
    assert whole.json()["data"]["me"]["role"] == "PARTNER"
    by_hash = await client.get(
        "/graphql",
        params={"extensions": orjson.dumps(extension(allowed)).decode()},
        headers=headers,
    )
    assert by_hash.json()["data"]["me"]["role"] == "PARTNER"
    # when the partner sends anything else: refused before it runs, and never kept for APQ
    with counted_statements() as statements:
        for body in (
            {"query": other},
            {"extensions": extension(other)},
            {"query": other, "extensions": extension(other)},
        ):
            refused = await client.post("/graphql", json=body, headers=headers)
            assert refused.status_code == 200
            assert error_codes(refused.json()) == ["PERSISTED_QUERY_NOT_IN_LIST"]
            assert refused.json()["data"] is None
            assert refused.json()["errors"][0]["extensions"]["requestId"]
    # nothing but the allow-list was read
    assert statements and all("trusted_documents" in statement for statement in statements)
    admin = {"authorization": f"Bearer {school.token(school.admin)}"}
    not_kept = await client.post("/graphql", json={"extensions": extension(other)}, headers=admin)
    assert error_codes(not_kept.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_everyone_else_runs_any_document_by_default(client, factory):
    school = await factory.school(students=1)
    headers = {"authorization": f"Bearer {school.token(school.admin)}"}
    body = (
        await client.post("/graphql", json={"query": unique_document()}, headers=headers)
    ).json()
    assert body["data"]["me"]["role"] == "ADMIN"


async def test_a_partner_batch_is_refused_operation_by_operation(client, factory):
    school = await factory.school(students=1)
    headers = {"authorization": f"Bearer {await factory.partner(school)}"}
    allowed = unique_document()
    await factory.trust(allowed)
    response = await client.post(
        "/graphql", json=[{"query": allowed}, {"query": unique_document()}], headers=headers
    )
    first, second = response.json()
    assert first["data"]["me"]["role"] == "PARTNER"
    assert error_codes(second) == ["PERSISTED_QUERY_NOT_IN_LIST"]


async def test_enforced_for_everyone_even_logins_must_be_registered(settings, factory):
    school = await factory.school(students=1)
    login = "mutation Login($t: String!, $e: String!, $p: String!) { login(tenant: $t, email: $e, password: $p) { token } }"
    variables = {"t": school.tenant.slug, "e": school.admin.email, "p": "wrong password"}
    enforced = dataclasses.replace(settings, trusted_documents=TrustMode.ENFORCE)
    async with api_process(enforced) as http:
        refused = await http.post("/graphql", json={"query": login, "variables": variables})
        assert error_codes(refused.json()) == ["PERSISTED_QUERY_NOT_IN_LIST"]
        await factory.trust(login + " ")  # a different text: still not this one
        still = await http.post("/graphql", json={"query": login, "variables": variables})
        assert error_codes(still.json()) == ["PERSISTED_QUERY_NOT_IN_LIST"]
    await factory.trust(login)
    async with api_process(enforced) as http:
        runs = await http.post(
            "/graphql", json={"extensions": extension(login), "variables": variables}
        )
    assert error_codes(runs.json()) == ["UNAUTHENTICATED"]  # it ran: the password is wrong


async def test_clients_move_to_enforcement_one_at_a_time(settings, factory, caplog):
    school = await factory.school(students=1)
    token = {"authorization": f"Bearer {school.token(school.admin)}"}
    rollout = dataclasses.replace(
        settings,
        trusted_documents=TrustMode.LOG,
        trusted_documents_clients={"web": TrustMode.ENFORCE, "legacy": TrustMode.PARTNERS},
    )
    document = unique_document()
    async with api_process(rollout) as http:

        async def send(client_name: str | None) -> dict:
            headers = dict(token)
            if client_name:
                headers["apollographql-client-name"] = client_name
            return (await http.post("/graphql", json={"query": document}, headers=headers)).json()

        assert error_codes(await send("web")) == ["PERSISTED_QUERY_NOT_IN_LIST"]
        with caplog.at_level(logging.WARNING, logger="resolvers.documents"):
            assert (await send("ios"))["data"]["me"]["role"] == "ADMIN"
            assert (await send(None))["data"]["me"]["role"] == "ADMIN"
        logged = [r.getMessage() for r in caplog.records if r.name == "resolvers.documents"]
        digest = hashlib.sha256(document.encode()).hexdigest()
        assert logged == [
            f"untrusted document {digest} (client ios) would be refused once enforced",
            f"untrusted document {digest} (client -) would be refused once enforced",
        ]
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="resolvers.documents"):
            assert (await send("legacy"))["data"]["me"]["role"] == "ADMIN"
        assert not [r for r in caplog.records if r.name == "resolvers.documents"]
