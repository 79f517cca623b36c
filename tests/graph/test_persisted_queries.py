"""Apollo's automatic persisted queries, as Apollo Client's persisted-queries link uses them."""

from __future__ import annotations

import hashlib

import orjson

from tests.factories import api_process, error_codes

QUERY = "query Me($n: Int) { me { id role } notifications(first: $n) { totalCount } }"


def extension(document: str, version: int = 1) -> dict:
    digest = hashlib.sha256(document.encode()).hexdigest()
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


async def test_the_apollo_flow_over_post_then_get_on_another_process(
    client, factory, settings, redis
):
    school = await factory.school(students=1)
    headers = {"authorization": f"Bearer {school.token(school.admin)}"}
    # the hash alone first: not known yet
    first = await client.post("/graphql", json={"extensions": extension(QUERY)}, headers=headers)
    [error] = first.json()["errors"]
    assert error["message"] == "PersistedQueryNotFound"
    assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    # then hash and document: run and kept
    second = await client.post(
        "/graphql", json={"query": QUERY, "extensions": extension(QUERY)}, headers=headers
    )
    assert second.json()["data"]["me"]["role"] == "ADMIN"
    # from then on the hash alone works, over GET too, in any API process
    async with api_process(settings) as other:
        third = await other.get(
            "/graphql",
            params={
                "extensions": orjson.dumps(extension(QUERY)).decode(),
                "variables": '{"n": 1}',
                "operationName": "Me",
            },
            headers=headers,
        )
    assert third.status_code == 200
    assert third.json()["data"]["me"]["id"] == str(school.admin.id)


async def test_a_wrong_hash_or_invalid_document_is_never_kept(client, factory, redis):
    school = await factory.school(students=1)
    headers = {"authorization": f"Bearer {school.token(school.admin)}"}
    other = "{ me { email } }"
    mismatch = await client.post(
        "/graphql", json={"query": QUERY, "extensions": extension(other)}, headers=headers
    )
    assert error_codes(mismatch.json()) == ["VALIDATION_ERROR"]
    assert "does not match" in mismatch.json()["errors"][0]["message"]
    broken = "{ me { nope } }"
    invalid = await client.post(
        "/graphql", json={"query": broken, "extensions": extension(broken)}, headers=headers
    )
    assert error_codes(invalid.json()) == ["GRAPHQL_VALIDATION_FAILED"]
    for document in (other, broken):
        again = await client.post(
            "/graphql", json={"extensions": extension(document)}, headers=headers
        )
        assert error_codes(again.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    version = await client.post(
        "/graphql", json={"query": QUERY, "extensions": extension(QUERY, 2)}, headers=headers
    )
    assert error_codes(version.json()) == ["VALIDATION_ERROR"]


async def test_gets_are_private_to_their_token_and_revalidate_with_an_etag(client, factory):
    school = await factory.school(students=1)
    headers = {"authorization": f"Bearer {school.token(school.admin)}"}
    params = {"query": "query Me { me { id role } }"}
    first = await client.get("/graphql", params=params, headers=headers)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "private, no-cache"
    assert first.headers["vary"] == "Authorization"
    etag = first.headers["etag"]
    # unchanged data: 304 with no body
    again = await client.get("/graphql", params=params, headers={**headers, "if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag and again.headers["vary"] == "Authorization"
    # another viewer's answer differs, so the copy is not theirs
    other = {"authorization": f"Bearer {school.token(school.teachers[0])}"}
    theirs = await client.get("/graphql", params=params, headers={**other, "if-none-match": etag})
    assert theirs.status_code == 200 and theirs.json()["data"]["me"]["role"] == "TEACHER"
    # errors are never stored, and POSTs are left alone
    refused = await client.get("/graphql", params=params)
    assert refused.headers["cache-control"] == "no-store" and "etag" not in refused.headers
    posted = await client.post("/graphql", json=params, headers=headers)
    assert "etag" not in posted.headers
