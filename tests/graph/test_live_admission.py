"""Unauthenticated WebSockets are capped per client address and closed when they send no
``connection_init`` in time; acknowledged ones give their place back."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from websockets.exceptions import InvalidStatus

from rollcall.live_client import LiveClient
from rollcall.processes import running_server
from tests.factories import process_env

WAITING = 3


@pytest.fixture
async def server(settings):
    env = process_env(
        settings,
        ROLLCALL_WS_UNAUTHENTICATED_PER_ADDRESS=str(WAITING),
        ROLLCALL_WS_INIT_TIMEOUT_SECONDS="1",
    )
    async with running_server(env) as started:
        yield started


async def refused_at_handshake(url: str) -> bool:
    try:
        async with LiveClient.connect(url):
            return False
    except InvalidStatus as refused:
        return refused.response.status_code == 403


async def test_an_address_holds_only_so_many_waiting_sockets(server, factory):
    school = await factory.school(students=1)
    async with contextlib.AsyncExitStack() as stack:
        waiting = [
            await stack.enter_async_context(LiveClient.connect(server.ws_url))
            for _ in range(WAITING)
        ]
        assert await refused_at_handshake(server.ws_url)
        # one signs in: its place is free for the next
        await waiting[0].init(school.token(school.admin))
        extra = await stack.enter_async_context(LiveClient.connect(server.ws_url))
        assert await refused_at_handshake(server.ws_url)
        # the others say nothing and are closed by the protocol's timeout (4408)…
        closed = await asyncio.wait_for(waiting[1].closed, 5)
        assert closed.code == 4408
        await asyncio.wait_for(extra.closed, 5)
    # …and every place is given back
    async with LiveClient.connect(server.ws_url) as again:
        assert (await again.init(school.token(school.admin))) is not None
