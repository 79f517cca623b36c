"""The two-tier cache against a real Redis: hits, tag invalidation across instances, single
flight, stale-while-revalidate, and falling back to the database when Redis fails."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from services.platform.cache import Cache, ServerIdentity, Source, Spec, tenant_key
from services.platform.circuit import BreakerState, CircuitBreaker
from services.platform.errors import NotFound

TTLS = {"figure": 10}


@dataclass(frozen=True, slots=True)
class Figure:
    value: int


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeDatabase:
    """What a cached read computes from: counts computations, returns the current value."""

    def __init__(self, value: int = 1, delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay
        self.computed = 0

    async def compute(self) -> Figure:
        self.computed += 1
        await asyncio.sleep(self.delay)
        return Figure(self.value)


def spec(
    tenant: uuid.UUID,
    compute: Callable[[], Awaitable[Any]],
    key: str = "k",
    tags=("student:1",),
    value_type: type = Figure,
) -> Spec[Any]:
    """A cached read of ``compute``'s figure (of ``value_type``)."""
    return Spec(
        tenant_id=tenant,
        kind="figure",
        key=key,
        tags=tuple(tags),
        value_type=value_type,
        compute=compute,
    )


@pytest.fixture
def tenant():
    return uuid.uuid4()


def cache_on(redis, **options) -> Cache:
    return Cache(redis=redis, ttls=TTLS, **options)


async def test_a_second_read_is_an_l1_hit_without_computing(redis, tenant):
    cache, source = cache_on(redis), FakeDatabase()
    first = await cache.fetch(spec(tenant, source.compute))
    second = await cache.fetch(spec(tenant, source.compute))
    assert (first.source, second.source) == (Source.DATABASE, Source.L1)
    assert second.value == Figure(1) and source.computed == 1
    assert cache.stats.l1_hits == 1 and cache.stats.misses == 1


async def test_another_process_reads_the_entry_from_redis(redis, tenant):
    writer, reader, source = cache_on(redis), cache_on(redis), FakeDatabase()
    await writer.fetch(spec(tenant, source.compute))
    found = await reader.fetch(spec(tenant, source.compute))
    assert found.source is Source.L2 and found.value == Figure(1) and source.computed == 1


async def test_keys_are_scoped_to_the_tenant(redis, tenant):
    await cache_on(redis).fetch(spec(tenant, FakeDatabase().compute))
    keys = [key.decode() async for key in redis.scan_iter()]
    assert keys and all(key.startswith(f"tenant:{{{tenant}}}:") for key in keys)


async def test_invalidating_a_tag_reaches_l1_in_every_instance(redis, tenant):
    # given two processes holding the entry in L1
    one, two, source = cache_on(redis), cache_on(redis), FakeDatabase()
    await one.fetch(spec(tenant, source.compute))
    await two.fetch(spec(tenant, source.compute))
    # when the value changes and one process invalidates its tag
    source.value = 2
    await one.invalidate(tenant_id=tenant, tags=["student:1"])
    # then the other's very next read recomputes
    found = await two.fetch(spec(tenant, source.compute))
    assert found.value == Figure(2) and found.source is Source.DATABASE


async def test_an_unrelated_tag_leaves_the_entry_alone(redis, tenant):
    cache, source = cache_on(redis), FakeDatabase()
    await cache.fetch(spec(tenant, source.compute))
    await cache.invalidate(tenant_id=tenant, tags=["student:2"])
    await cache.invalidate(tenant_id=uuid.uuid4(), tags=["student:1"])
    assert (await cache.fetch(spec(tenant, source.compute))).source is Source.L1


async def test_a_value_computed_across_a_write_is_not_stored(redis, tenant):
    # given a computation that reads the old value while a write invalidates its tag
    cache = cache_on(redis)

    async def racing() -> Figure:
        await cache.invalidate(tenant_id=tenant, tags=["student:1"])
        return Figure(1)

    await cache.fetch(spec(tenant, racing))
    # then it was not kept: the next read computes again
    assert cache.stats.stores_skipped == 1
    source = FakeDatabase(value=2)
    assert (await cache.fetch(spec(tenant, source.compute))).value == Figure(2)


async def test_a_lost_tag_never_revives_an_old_entry(redis, tenant):
    # given an entry, then its tag evicted (allkeys-lru may drop any key)
    cache, source = cache_on(redis), FakeDatabase()
    await cache.fetch(spec(tenant, source.compute))
    await redis.delete(f"tenant:{{{tenant}}}:tag:student:1")
    source.value = 2
    # then the entry is gone for every reader
    assert (await cache_on(redis).fetch(spec(tenant, source.compute))).value == Figure(2)
    assert (await cache.fetch(spec(tenant, source.compute))).value == Figure(2)


async def test_concurrent_misses_compute_once_per_process(redis, tenant):
    cache, source = cache_on(redis), FakeDatabase(delay=0.05)
    found = await asyncio.gather(*(cache.fetch(spec(tenant, source.compute)) for _ in range(20)))
    assert source.computed == 1 and {lookup.value for lookup in found} == {Figure(1)}


async def test_concurrent_misses_compute_once_across_processes(redis, tenant):
    caches, source = [cache_on(redis) for _ in range(4)], FakeDatabase(delay=0.05)
    found = await asyncio.gather(
        *(cache.fetch(spec(tenant, source.compute)) for cache in caches * 5)
    )
    assert source.computed == 1 and {lookup.value for lookup in found} == {Figure(1)}


async def test_a_waiting_miss_takes_the_entry_stored_as_the_lock_was_let_go(redis, tenant):
    # given another process holding the entry's lock while this one waits for it
    lock = tenant_key(tenant, "lock", "figure", "k")
    await redis.set(lock, "another process")
    holder, waiter, source = cache_on(redis), cache_on(redis), FakeDatabase()
    read_entry, reads = waiter._read_entry, 0

    async def holder_done_after_the_first_look(*args):
        # the waiter's second read is its first look while it waits: the holder stores its
        # entry and lets go of the lock right after it, before the waiter tries the lock again
        nonlocal reads
        reply = await read_entry(*args)
        reads += 1
        if reads == 2:
            await redis.delete(lock)
            await holder.fetch(spec(tenant, source.compute))
        return reply

    waiter._read_entry = holder_done_after_the_first_look
    # when the waiter takes the lock
    found = await waiter.fetch(spec(tenant, source.compute))
    # then it reads the holder's entry rather than computing the value a second time
    assert source.computed == 1 and found.value == Figure(1) and reads == 3


async def test_a_read_after_a_write_does_not_join_an_older_computation(redis, tenant):
    # given a slow computation in flight with the old value
    cache, source = cache_on(redis), FakeDatabase(delay=0.1)
    before = asyncio.ensure_future(cache.fetch(spec(tenant, source.compute)))
    await asyncio.sleep(0.02)
    # when a write changes the value and invalidates
    source.value = 2
    await cache.invalidate(tenant_id=tenant, tags=["student:1"])
    # then a read that starts after it sees the new value
    after = await cache.fetch(spec(tenant, source.compute))
    assert after.value == Figure(2)
    await before


async def test_a_stale_entry_is_served_and_refreshed_in_the_background(redis, tenant):
    clock = Clock()
    cache, source = cache_on(redis, clock=clock), FakeDatabase()
    await cache.fetch(spec(tenant, source.compute))
    # when the soft TTL has passed and the value changed
    clock.now += TTLS["figure"] + 1
    source.value = 2
    stale = await cache.fetch(spec(tenant, source.compute))
    # then the old value is served at once, marked stale, and refreshed behind it
    assert stale.value == Figure(1) and stale.stale
    await asyncio.sleep(0.05)
    fresh = await cache.fetch(spec(tenant, source.compute))
    assert fresh.value == Figure(2) and not fresh.stale
    assert cache.stats.stale_serves == 1 and cache.stats.background_refreshes == 1


async def test_a_constrained_process_serves_stale_entries_without_refreshing_them(redis, tenant):
    # given a process short of CPU or memory, and an entry past its soft TTL
    clock = Clock()
    cache, source = cache_on(redis, clock=clock, constrained=lambda: True), FakeDatabase()
    await cache.fetch(spec(tenant, source.compute))
    clock.now += TTLS["figure"] + 1
    source.value = 2
    # when it is read twice
    first = await cache.fetch(spec(tenant, source.compute))
    await asyncio.sleep(0.05)
    second = await cache.fetch(spec(tenant, source.compute))
    # then the stale value is served and no background refresh runs
    assert first.value == second.value == Figure(1) and second.stale
    assert cache.stats.background_refreshes == 0 and cache.stats.refreshes_deferred == 2


async def test_errors_are_not_cached(redis, tenant):
    cache, calls = cache_on(redis), itertools.count()

    async def missing() -> Figure:
        next(calls)
        raise NotFound("No such figure.")

    failing = spec(tenant, missing, tags=())
    for _ in range(2):
        with pytest.raises(NotFound):
            await cache.fetch(failing)
    assert next(calls) == 2
    assert cache.breaker.state is BreakerState.CLOSED


async def test_redis_down_reads_from_the_database_and_the_breaker_opens(tenant):
    # given a Redis that refuses connections
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    clock = Clock()
    breaker = CircuitBreaker(clock=clock)
    cache, source = cache_on(dead, breaker=breaker), FakeDatabase()
    # then every read still answers, from the database
    found = [await cache.fetch(spec(tenant, source.compute)) for _ in range(8)]
    assert {lookup.source for lookup in found} == {Source.BYPASS}
    assert {lookup.value for lookup in found} == {Figure(1)}
    # and after five failures Redis is no longer tried
    assert breaker.state is BreakerState.OPEN and cache.stats.redis_errors == 5
    assert cache.degraded
    await dead.aclose()


async def test_the_half_open_probe_replays_missed_invalidations_first(redis, tenant):
    # given an open breaker and an invalidation that could not reach Redis
    replayed: list[str] = []
    clock = Clock()
    breaker = CircuitBreaker(clock=clock, failures=1)
    cache = None

    async def replay() -> None:
        replayed.append("now")
        await cache.apply_invalidation(tenant_id=tenant, tags=["student:1"])

    cache, source = cache_on(redis, breaker=breaker, on_reconnect=replay), FakeDatabase()
    await cache.fetch(spec(tenant, source.compute))
    breaker.record_failure()
    source.value = 2
    # when the reset time has passed
    clock.now += 30
    found = await cache.fetch(spec(tenant, source.compute))
    # then the replay ran before the read, which therefore saw the new value
    assert replayed == ["now"] and found.value == Figure(2)
    assert breaker.state is BreakerState.CLOSED


@settings(max_examples=25)
@given(
    st.lists(
        st.tuples(st.sampled_from(["read", "write"]), st.integers(0, 2), st.integers(0, 1)),
        max_size=25,
    )
)
async def test_no_read_after_a_write_misses_it(redis_url, operations):
    """Property: three processes, two keys; a read returns the value of the last write."""
    client = aioredis.Redis.from_url(redis_url)
    tenant = uuid.uuid4()
    caches = [cache_on(client) for _ in range(3)]
    sources = [FakeDatabase(value=0), FakeDatabase(value=0)]
    for action, process, key in operations:
        cache, source = caches[process], sources[key]
        read = spec(tenant, source.compute, key=str(key), tags=(f"student:{key}",))
        if action == "write":
            source.value += 1
            await cache.invalidate(tenant_id=tenant, tags=[f"student:{key}"])
        else:
            assert (await cache.fetch(read)).value == Figure(source.value)
    await client.aclose()


@dataclass(frozen=True, slots=True)
class Reshaped:
    """Figure as a later version of the code might define it."""

    value: int
    unit: str


async def test_an_entry_that_no_longer_decodes_is_a_miss(redis, tenant):
    old, source = cache_on(redis), FakeDatabase()
    await old.fetch(spec(tenant, source.compute))
    new = cache_on(redis)

    async def compute() -> Reshaped:
        return Reshaped(7, "periods")

    reshaped = spec(tenant, compute, value_type=Reshaped)
    found = await new.fetch(reshaped)
    assert (found.source, found.value) == (Source.DATABASE, Reshaped(7, "periods"))
    assert new.stats.undecodable == 1
    assert (await cache_on(redis).fetch(reshaped)).source is Source.L2


def epoch_key(tenant) -> str:
    return f"tenant:{{{tenant}}}:epoch"


async def test_an_epoch_made_on_another_server_makes_its_entries_misses(redis, tenant):
    # given an entry in L1 and L2
    cache, source = cache_on(redis), FakeDatabase()
    await cache.fetch(spec(tenant, source.compute))
    # when the tenant's epoch names another server (a snapshot or a replica's data loaded here)
    await redis.hset(epoch_key(tenant), "run", "0" * 40)
    source.value = 2
    # then the entry, in this process and any other, is a miss and a new epoch is drawn
    found = await cache.fetch(spec(tenant, source.compute))
    assert found.source is Source.DATABASE and found.value == Figure(2)
    assert (await cache_on(redis).fetch(spec(tenant, source.compute))).source is Source.L2
    assert await redis.hget(epoch_key(tenant), "run") == cache.server.run_id.encode()


async def test_a_read_sent_before_the_server_changed_is_asked_again(settings, tenant):
    # given a process whose connections report the server's run_id
    server = ServerIdentity()
    client = aioredis.Redis.from_url(settings.redis_url, redis_connect_func=server.connected)
    try:
        cache, source = Cache(redis=client, ttls=TTLS, server=server), FakeDatabase()
        await cache.fetch(spec(tenant, source.compute))
        # and an older server's data that this process last saw: the same epoch, the same run
        await client.hset(epoch_key(tenant), "run", "0" * 40)
        server.run_id = "0" * 40
        source.value = 2
        # when its connections drop and the read goes out to the real server
        await client.connection_pool.disconnect()
        found = await cache.fetch(spec(tenant, source.compute))
        # then the answer to the read built for the old server is not trusted: asked again,
        # the server draws a new epoch, L1 is dropped and the value is computed anew
        assert found.source is Source.DATABASE and found.value == Figure(2)
        assert cache.stats.server_changes == 1 and server.run_id != "0" * 40
    finally:
        await client.aclose()
