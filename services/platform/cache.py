"""Read-through cache: L1 in this process, L2 in Redis, PostgreSQL behind both.

Every entry depends on tags (``student:<id>``, ``classroom:<id>``, ``statistics``). A tag's
version is a random token in Redis; invalidating a tag gives it a new token. An entry records
the tag versions read *before* its value was computed, and is served only while they are all
still current. One script reads the entry and the current versions in a single round trip, so
a write that has invalidated its tags is seen by the very next read in every process, L1
included. Versions are random rather than counted: a tag evicted or expired comes back with a
fresh token, so an old entry can never become valid again.

A Redis that goes back in time (a restart from an older snapshot, a lagging replica promoted)
would bring old versions back with their entries, so every entry also records its tenant's
*epoch*, valid only on the Redis server (``run_id``) that drew it (docs/cache-epoch.md). Keys,
entries, tokens and the server's identity are in cache_entries.py, the scripts in
cache_scripts.py.

Past its soft TTL an entry is still served (stale-while-revalidate) and refreshed in the
background, unless the process is short of CPU or memory; Redis drops it at twice the soft
TTL. Concurrent misses compute once per process (one task per key and versions) and once
across processes (a short Redis lock). When Redis fails, a circuit breaker sends reads straight
to the database and writes' invalidations to the caller, which queues them durably.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.platform import cache_scripts as scripts
from services.platform import recording, telemetry
from services.platform.cache_entries import (
    TAG_TTL_SECONDS,
    CacheStats,
    CacheUnavailable,
    Entry,
    Lookup,
    ServerIdentity,
    Source,
    Spec,
    Tokens,
    tenant_key,
)
from services.platform.circuit import BreakerState, CircuitBreaker
from services.platform.codec import decode, encode

T = TypeVar("T")
logger = logging.getLogger(__name__)

LOCK_TTL_MS = 5_000
LOCK_POLL_SECONDS = 0.01
HARD_TTL_FACTOR = 2
SAME = b"same"
READ_ATTEMPTS = 3


class Cache:
    """The two-tier cache. One per process; ``ttls`` maps each kind to its soft TTL (s)."""

    def __init__(
        self,
        *,
        redis: Redis,
        ttls: Mapping[str, float],
        l1_size: int = 1000,
        breaker: CircuitBreaker | None = None,
        server: ServerIdentity | None = None,
        epoch_markers: Sequence[str] = (),
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
        constrained: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``server`` is the identity ``redis``'s connections report to (``redis_connect_func``,
        as ``create_cache`` wires it). Without one a server whose data came from the server this
        process last saw (its snapshot, its replica) goes unnoticed: tests only.
        ``epoch_markers`` name the keys that writes ``touch``: an epoch that replaces another
        server's sets them all, since the data that server left may lack them."""
        self.redis = redis
        self.ttls = dict(ttls)
        self.breaker = breaker or CircuitBreaker()
        self.server = server or ServerIdentity()
        self.server.on_change = self._server_changed
        self._epoch_markers = tuple(epoch_markers)
        self.stats = CacheStats()
        self._l1: OrderedDict[str, Entry[Any]] = OrderedDict()
        self._l1_size = l1_size
        self._on_reconnect = on_reconnect
        self._constrained = constrained
        self._clock = clock
        self._flights: dict[tuple[str, str], asyncio.Task[Entry[Any]]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._read = redis.register_script(scripts.READ_SCRIPT)
        self._store = redis.register_script(scripts.STORE_SCRIPT)
        self._release = redis.register_script(scripts.RELEASE_SCRIPT)
        self._invalidate = redis.register_script(scripts.INVALIDATE_SCRIPT)
        self._token = Tokens()

    @property
    def degraded(self) -> bool:
        """True while the breaker keeps reads away from Redis."""
        return self.breaker.state is not BreakerState.CLOSED

    async def fetch(self, spec: Spec[T]) -> Lookup[T]:
        """The value from L1, L2 or ``spec.compute``; never fails because Redis does."""
        try:
            async with self._guard():
                return await self._fetch(spec)
        except CacheUnavailable:
            self.stats.bypassed += 1
            telemetry.CACHE_LOOKUPS.labels(spec.kind, "bypass").inc()
            recording.unrecorded_read("the cache was bypassed")
            value = await spec.compute()
            return Lookup(value, Source.BYPASS, stale=False)

    async def peek(self, spec: Spec[T]) -> Lookup[T] | None:
        """The entry while it is valid and fresh, from L1 or L2; None otherwise, Redis being
        unavailable included. Nothing is computed: for entries only their reader can make."""
        try:
            async with self._guard():
                _, watched, entry, source = await self._stored(spec)
        except CacheUnavailable:
            return None
        if entry is None or entry.soft_expiry <= self._clock():
            return None
        return Lookup(
            entry.value, source, stale=False, watched=watched, soft_expiry=entry.soft_expiry
        )

    async def read_fields(self, spec: Spec[Any], *names: str) -> list[str | None]:
        """Fields stored beside ``spec``'s L2 entry by ``put``; CacheUnavailable without Redis."""
        async with self._guard():
            values = await self.redis.hmget(spec.entry_key, list(names))
        return [None if value is None else value.decode() for value in values]

    def now(self) -> float:
        """The cache's clock (seconds since the epoch): what soft expiries are on."""
        return self._clock()

    async def put(
        self,
        spec: Spec[T],
        value: T,
        *,
        versions: str,
        soft_expiry: float,
        fields: Mapping[str, str] | None = None,
    ) -> bool:
        """Store ``value``, computed from reads that saw ``versions`` of ``spec.tags``, until
        ``soft_expiry``, with ``fields`` beside it in L2; only while those versions are still
        current (else False: a write came in between)."""
        now = self._clock()
        entry = Entry(
            value=value,
            versions=versions,
            stamp=repr(now),
            soft_expiry=soft_expiry,
            hard_expiry=soft_expiry,
        )
        expire_ms = max(int((soft_expiry - now) * 1000), 1)
        try:
            async with self._guard():
                return await self._write(spec, entry, expire_ms, fields or {})
        except CacheUnavailable:
            return False

    async def invalidate(
        self, *, tenant_id: uuid.UUID, tags: Sequence[str], touch: Sequence[str] = ()
    ) -> None:
        """Give each tag a new version and set each ``touch`` key to Redis's clock (seconds);
        CacheUnavailable if Redis did not take them (the caller must retry them later)."""
        async with self._guard():
            await self.apply_invalidation(tenant_id=tenant_id, tags=tags, touch=touch)

    async def apply_invalidation(
        self, *, tenant_id: uuid.UUID, tags: Sequence[str], touch: Sequence[str] = ()
    ) -> None:
        """``invalidate`` without the breaker, for replaying invalidations Redis missed."""
        if not tags and not touch:
            return
        await self._invalidate(
            keys=[
                *(tenant_key(tenant_id, "tag", tag) for tag in tags),
                *(tenant_key(tenant_id, name) for name in touch),
            ],
            args=[len(tags), secrets.token_hex(8), TAG_TTL_SECONDS],
        )
        self.stats.invalidations += len(tags)

    async def aclose(self) -> None:
        """Cancel background refreshes (their results would only be cached)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """Run Redis operations under the breaker; Redis errors become CacheUnavailable.

        The half-open probe first replays invalidations that could not reach Redis.
        """
        if not self.breaker.allow():
            raise CacheUnavailable("the Redis circuit breaker is open")
        try:
            if self.breaker.probing and self._on_reconnect is not None:
                await self._on_reconnect()
            yield
        except CacheUnavailable:
            raise
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(error)
            raise CacheUnavailable(str(error)) from error
        except BaseException:
            self.breaker.record_success()  # Redis answered; the error is the caller's
            raise
        self.breaker.record_success()

    def _server_changed(self, previous: str, current: str) -> None:
        """Another Redis server answers (restarted, failed over, restored): what L1 holds was
        validated against the old one, so it goes; L2's entries are misses from now on."""
        self._l1.clear()
        self.stats.server_changes += 1
        telemetry.CACHE_SERVER_CHANGES.inc()
        logger.warning(
            "cache: Redis server changed (run_id %s → %s); its entries start a new epoch",
            previous,
            current,
        )

    def _failed(self, error: BaseException) -> None:
        self.stats.redis_errors += 1
        telemetry.CACHE_REDIS_ERRORS.inc()
        self.breaker.record_failure()
        logger.warning("cache: Redis failed (%s); reading from the database", error)

    async def _fetch(self, spec: Spec[T]) -> Lookup[T]:
        versions, watched, entry, source = await self._stored(spec)
        if entry is None:
            self.stats.misses += 1
            telemetry.CACHE_LOOKUPS.labels(spec.kind, "miss").inc()
            computed = await self._single_flight(spec, versions)
            self._note(spec, versions, computed.soft_expiry, stale=False)
            return Lookup(computed.value, Source.DATABASE, stale=False, watched=watched)
        stale = entry.soft_expiry <= self._clock()
        if stale:
            self.stats.stale_serves += 1
            telemetry.CACHE_STALE_SERVES.labels(spec.kind).inc()
            self._refresh_in_background(spec, versions)
        self._note(spec, versions, entry.soft_expiry, stale=stale)
        return Lookup(entry.value, source, stale=stale, watched=watched)

    async def _stored(
        self, spec: Spec[T]
    ) -> tuple[str, tuple[str | None, ...], Entry[T] | None, Source]:
        """The current versions of ``spec``'s tags, its watched values, and its entry when L1
        or L2 holds one for those versions (None: a miss), with where it came from."""
        key = spec.entry_key
        local = self._l1.get(key)
        if local is not None and local.hard_expiry <= self._clock():
            del self._l1[key]
            local = None
        reply = await self._read_entry(spec, local.stamp if local else "")
        versions = reply[0].decode()
        watched = tuple(value.decode() or None for value in reply[1])
        if len(reply) > 2 and reply[2] == SAME and local is not None:
            self._l1.move_to_end(key)
            self.stats.l1_hits += 1
            telemetry.CACHE_LOOKUPS.labels(spec.kind, "l1_hit").inc()
            return versions, watched, local, Source.L1
        if stored := self._entry_from_reply(spec, versions, reply):
            self.stats.l2_hits += 1
            telemetry.CACHE_LOOKUPS.labels(spec.kind, "l2_hit").inc()
            return versions, watched, stored, Source.L2
        return versions, watched, None, Source.DATABASE

    @staticmethod
    def _note(spec: Spec[Any], versions: str, soft_expiry: float, *, stale: bool) -> None:
        """Tell the running operation's recording (if any) what this read depended on."""
        if (running := recording.current()) is not None:
            running.lookup(
                tags=spec.tags,
                versions=versions,
                watch=spec.watch,
                soft_expiry=soft_expiry,
                stale=stale,
            )

    async def _read_entry(self, spec: Spec[Any], l1_stamp: str) -> list[Any]:
        """READ_SCRIPT for ``spec``: current versions, watched values and the entry (or
        'same' when L2 still holds the entry stamped ``l1_stamp``), from a server whose run_id
        this process knew both before and after asking (one that took its place meanwhile may
        be holding an older snapshot: asked again, it draws a new epoch)."""
        for _ in range(READ_ATTEMPTS):
            run_id = self.server.run_id
            reply: list[Any] = await self._read(
                keys=[
                    *spec.redis_keys(),
                    *(tenant_key(spec.tenant_id, name) for name in self._epoch_markers),
                ],
                args=[
                    len(spec.tags),
                    l1_stamp,
                    self._token(),
                    TAG_TTL_SECONDS,
                    run_id,
                    len(spec.watch),
                ],
            )
            answered = reply[0].decode()
            if answered != run_id:
                self.server.identified(answered)
            elif self.server.run_id == run_id:
                return reply[1:]
        raise CacheUnavailable("the Redis server changed at every read")

    def _remember(self, key: str, entry: Entry[Any]) -> None:
        self._l1[key] = entry
        self._l1.move_to_end(key)
        while len(self._l1) > self._l1_size:
            self._l1.popitem(last=False)

    def _single_flight(self, spec: Spec[T], versions: str) -> asyncio.Task[Entry[T]]:
        """One computation per key and tag versions in this process (a later version, i.e. a
        read after a write, never joins a computation that may predate the write)."""
        flight = (spec.entry_key, versions)
        task = self._flights.get(flight)
        if task is None:
            task = asyncio.ensure_future(self._fill(spec, versions))
            self._flights[flight] = task
            task.add_done_callback(lambda _: self._flights.pop(flight, None))
        return task

    def _refresh_in_background(self, spec: Spec[Any], versions: str) -> None:
        """Refresh a stale entry; not while the process is short of CPU or memory (it keeps
        serving the stale entry until its hard TTL, when a read recomputes it)."""
        if (spec.entry_key, versions) in self._flights:
            return
        if self._constrained():
            self.stats.refreshes_deferred += 1
            return
        self.stats.background_refreshes += 1
        task = asyncio.ensure_future(self._background_fill(spec, versions))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _background_fill(self, spec: Spec[Any], versions: str) -> None:
        try:
            await self._single_flight(spec, versions)
        except Exception:
            logger.warning("cache: background refresh of %s failed", spec.entry_key, exc_info=True)

    async def _fill(self, spec: Spec[T], versions: str) -> Entry[T]:
        """Compute and store under a cross-process lock; while another process holds it, wait
        for its entry (computing anyway if it takes longer than the lock lives)."""
        recording.stop_recording()
        lock = tenant_key(spec.tenant_id, "lock", spec.kind, spec.key)
        token = secrets.token_hex(8)
        deadline = self._clock() + LOCK_TTL_MS / 1000
        try:
            waited = False
            while not await self.redis.set(lock, token, nx=True, px=LOCK_TTL_MS):
                waited = True
                await asyncio.sleep(LOCK_POLL_SECONDS)
                if (stored := await self._current_entry(spec, versions)) is not None:
                    return stored
                if self._clock() >= deadline:
                    break
            try:
                # The holder may have stored and let go since the last look: look once more.
                if waited and (stored := await self._current_entry(spec, versions)) is not None:
                    return stored
                return await self._compute_and_store(spec, versions)
            finally:
                await self._release(keys=[lock], args=[token])
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(error)
            raise CacheUnavailable(str(error)) from error

    async def _current_entry(self, spec: Spec[T], versions: str) -> Entry[T] | None:
        return self._entry_from_reply(spec, versions, await self._read_entry(spec, ""))

    def _entry_from_reply(self, spec: Spec[T], versions: str, reply: list[Any]) -> Entry[T] | None:
        """The L2 entry computed from ``versions``, remembered in L1; None when there is none,
        or when its payload no longer decodes (written by a version of the code whose value
        had another shape): then it is a miss."""
        if len(reply) <= 2 or reply[0].decode() != versions:
            return None
        stamp = reply[2].decode()
        try:
            value = decode(spec.value_type, reply[4])
        except ValueError:
            self.stats.undecodable += 1
            logger.warning("cache: %s does not decode; recomputing", spec.entry_key)
            return None
        entry = Entry(
            value=value,
            versions=versions,
            stamp=stamp,
            soft_expiry=float(reply[3]),
            hard_expiry=float(stamp) + HARD_TTL_FACTOR * self.ttls[spec.kind],
        )
        self._remember(spec.entry_key, entry)
        return entry

    async def _compute_and_store(self, spec: Spec[T], versions: str) -> Entry[T]:
        value = await spec.compute()
        self.stats.computed += 1
        now = self._clock()
        ttl = self.ttls[spec.kind]
        entry = Entry(
            value=value,
            versions=versions,
            stamp=repr(now),
            soft_expiry=now + ttl,
            hard_expiry=now + HARD_TTL_FACTOR * ttl,
        )
        await self._write(spec, entry, int(HARD_TTL_FACTOR * ttl * 1000), {})
        return entry

    async def _write(
        self, spec: Spec[T], entry: Entry[T], expire_ms: int, fields: Mapping[str, str]
    ) -> bool:
        """Store ``entry`` in L2 (dropped after ``expire_ms``), ``fields`` beside it, and in
        L1: only while the versions it was computed from are current. Whether it was."""
        stored = await self._store(
            keys=spec.redis_keys()[: 2 + len(spec.tags)],
            args=[
                entry.versions,
                entry.stamp,
                repr(entry.soft_expiry),
                encode(entry.value),
                expire_ms,
                *(item for pair in fields.items() for item in pair),
            ],
        )
        if stored:
            self._remember(spec.entry_key, entry)
        else:
            self.stats.stores_skipped += 1
        return bool(stored)
