"""A body over its cap is refused (413) before it is read whole; a padded document is refused
before it is parsed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from rollcall.processes import running_server
from tests.factories import api_process, counted_statements, error_codes, gql, process_env

ME = "{ me { id } }"
MIB = 1024 * 1024


def padded_body(size: int) -> bytes:
    """A JSON operation of ``size`` bytes: ``{ __typename }`` with a long unused variable."""
    head = b'{"query":"{ __typename }","variables":{"pad":"'
    return head + b"x" * (size - len(head) - 3) + b'"}}'


async def test_a_json_body_over_the_cap_is_refused_whole_with_413(client):
    with counted_statements() as statements:
        response = await client.post(
            "/graphql", content=padded_body(2 * MIB), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "larger than 1,048,576 bytes" in error["message"]
    assert statements == []


async def test_a_chunked_body_is_refused_once_it_passes_the_cap(client):
    async def chunks() -> AsyncIterator[bytes]:
        body = padded_body(3 * MIB)
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = await client.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_a_body_under_the_cap_runs(client):
    response = await client.post(
        "/graphql", content=padded_body(MIB - 1024), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"__typename": "Query"}


async def test_the_cap_is_a_setting(settings):
    async with api_process(dataclasses.replace(settings, max_body_bytes=4096)) as http:
        small = await http.post("/graphql", json={"query": "{ __typename }"})
        large = await http.post(
            "/graphql", content=padded_body(8192), headers={"content-type": "application/json"}
        )
    assert small.status_code == 200
    assert large.status_code == 413
    assert "larger than 4,096 bytes" in large.json()["errors"][0]["message"]


@pytest.mark.parametrize("padding", [" ", "\n", ",", "# a comment\n"])
async def test_a_padded_document_is_refused_before_it_is_parsed(client, factory, padding):
    school = await factory.school(students=1)
    document = "{ me { id } }" + padding * (100_001 // len(padding) + 1)
    with counted_statements() as statements:
        body = await gql(client, document, token=school.token(school.admin))
    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert body["errors"][0]["extensions"]["field"] == "query"
    assert body.get("data") is None
    assert statements == []


def resident_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


async def test_over_a_socket_20_mib_are_refused_without_being_read(settings):
    """The process's memory does not grow by the body: it is refused on its declared length."""
    async with (
        running_server(process_env(settings)) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        await http.post("/graphql", json={"query": "{ __typename }"})
        before = resident_kb(server.pid)
        body = padded_body(20 * MIB)
        started = time.perf_counter()
        response = await http.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.2)
        grown = resident_kb(server.pid) - before
    assert response.status_code == 413
    assert json.loads(response.content)["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert grown < 4 * 1024, f"RSS grew by {grown} KiB answering in {elapsed * 1000:.0f} ms"
