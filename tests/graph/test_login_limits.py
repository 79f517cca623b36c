"""Guessing a password stays expensive without letting a stranger lock its owner out; the
client's address is the connection's unless a trusted proxy vouches for another."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from graph.edge.view import client_address, trusted_networks
from services.models import AuditAction, AuditLog
from services.platform.settings import DEFAULT_RATE_LIMITS, RateLimit
from tests.factories import PASSWORD, api_process, error_codes

LOGIN = """mutation L($t: String!, $e: String!, $p: String!) {
  login(tenant: $t, email: $e, password: $p) { token } }"""
STRANGER, OWNER = "203.0.113.9", "198.51.100.7"


def limits(**overrides: RateLimit) -> dict[str, RateLimit]:
    return {**DEFAULT_RATE_LIMITS, **overrides}


@pytest.fixture(params=[None])
async def behind_proxy(request, settings, redis):
    """An API process behind a trusted proxy (the tests' client, 127.0.0.1), with the default
    limits or the account limit a test asks for."""
    overrides = {"login_account": request.param} if request.param else {}
    proxied = dataclasses.replace(
        settings,
        rate_limits_enabled=True,
        rate_limits=limits(**overrides),
        trusted_proxies=("127.0.0.1",),
    )
    async with api_process(proxied) as http:
        yield http


async def attempt(http, school, password: str, address: str | None = None, email=None):
    headers = {"x-forwarded-for": address} if address else {}
    variables = {"t": school.tenant.slug, "e": email or school.admin.email, "p": password}
    return await http.post(
        "/graphql", json={"query": LOGIN, "variables": variables}, headers=headers
    )


async def count(factory, school, action: AuditAction) -> int:
    return await factory.count(
        AuditLog, AuditLog.tenant_id == school.tenant.id, AuditLog.action == action
    )


async def test_twenty_wrong_passwords_from_one_address_do_not_stop_the_owner(behind_proxy, factory):
    school = await factory.school(students=1)
    answers = [await attempt(behind_proxy, school, "wrong", STRANGER) for _ in range(20)]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    assert {a.status_code for a in answers[5:]} == {429}
    assert (await attempt(behind_proxy, school, PASSWORD, STRANGER)).status_code == 429
    owner = await attempt(behind_proxy, school, PASSWORD, OWNER)
    assert owner.json()["data"]["login"]["token"]
    assert await count(factory, school, AuditAction.LOGIN_FAILURE) == 5
    assert await count(factory, school, AuditAction.RATE_LIMIT_EXCEEDED) == 16


@pytest.mark.parametrize("behind_proxy", [RateLimit(3, 3600)], indirect=True)
async def test_the_accounts_own_limit_holds_only_where_guessing_failed(behind_proxy, factory):
    school = await factory.school(students=1)
    guessers = [f"203.0.113.{n}" for n in range(1, 4)]
    for address in guessers:  # three failures from three addresses: the account's limit (3)
        assert error_codes((await attempt(behind_proxy, school, "wrong", address)).json()) == [
            "UNAUTHENTICATED"
        ]
    # a guessing address is refused even the right password…
    refused = await attempt(behind_proxy, school, PASSWORD, guessers[0])
    assert refused.status_code == 429
    # …a new guesser gets one guess, no more…
    assert (await attempt(behind_proxy, school, "wrong", "203.0.113.50")).status_code == 200
    assert (await attempt(behind_proxy, school, "wrong", "203.0.113.50")).status_code == 429
    # …and the owner, from an address that never failed, signs in
    owner = await attempt(behind_proxy, school, PASSWORD, OWNER)
    assert owner.json()["data"]["login"]["token"]


async def test_without_trusted_proxies_a_forwarded_address_proves_nothing(settings, factory, redis):
    direct = dataclasses.replace(settings, rate_limits_enabled=True, rate_limits=limits())
    school = await factory.school(students=1)
    async with api_process(direct) as http:
        for n in range(5):
            await attempt(http, school, "wrong", f"198.51.100.{n}")
        locked = await attempt(http, school, PASSWORD, OWNER)
    assert locked.status_code == 429
    async with factory.session_factory() as session:
        addresses = set(
            await session.scalars(
                select(AuditLog.ip_address).where(AuditLog.tenant_id == school.tenant.id)
            )
        )
    assert {str(address) for address in addresses} == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("field", "value"), [("e", "a" * 100_000 + "@b.c"), ("t", "t" * 64), ("p", "p" * 1025)]
)
async def test_overlong_credentials_are_refused_before_anything_is_recorded(
    client, factory, field, value
):
    school = await factory.school(students=1)
    variables = {"t": school.tenant.slug, "e": school.admin.email, "p": "wrong", field: value}
    body = (await client.post("/graphql", json={"query": LOGIN, "variables": variables})).json()
    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert (
        body["errors"][0]["extensions"]["field"]
        == {"e": "email", "t": "tenant", "p": "password"}[field]
    )
    assert await count(factory, school, AuditAction.LOGIN_FAILURE) == 0


PROXIES = trusted_networks(("10.0.0.0/8", "127.0.0.1"))
untrusted = st.ip_addresses(v=4).filter(lambda ip: not any(ip in n for n in PROXIES)).map(str)


@given(
    client=untrusted,
    spoofed=st.lists(st.ip_addresses(v=4).map(str), max_size=3),
    hops=st.integers(0, 3),
)
def test_the_client_is_the_nearest_address_no_trusted_proxy_wrote(client, spoofed, hops):
    """Whatever the client claims in the header, the answer is the client itself: the address
    the first trusted proxy saw."""
    proxies = [f"10.0.0.{n + 1}" for n in range(hops)]
    # Each proxy appends the address it was reached from; the last one is the peer.
    written = [*spoofed, client, *proxies[:-1]] if hops else spoofed
    peer = proxies[-1] if hops else client
    assert client_address(peer, ", ".join(written) or None, PROXIES) == client
