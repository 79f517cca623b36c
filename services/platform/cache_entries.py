"""What the tagged cache holds and how it names it: entries, lookups and their sources, the
per-tenant keys (a Redis Cluster hash tag each), version tokens, and the identity of the Redis
server the entries were validated against."""

from __future__ import annotations

import functools
import itertools
import math
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from redis.asyncio.connection import Connection
from redis.exceptions import RedisError

from services.platform.cache_scripts import RUN_ID

T = TypeVar("T")
TAG_TTL_SECONDS = 24 * 3600  # longer than any entry lives; an expired tag only causes misses


class Source(StrEnum):
    L1 = "l1"
    L2 = "l2"
    DATABASE = "database"  # a miss: computed and stored
    BYPASS = "bypass"  # Redis unavailable: computed, not cached


@dataclass(frozen=True, slots=True)
class Lookup(Generic[T]):
    """A value and where it came from; ``watched`` holds the watched keys' values (None when
    Redis was not asked); ``soft_expiry`` is when it goes stale (told by ``peek``)."""

    value: T
    source: Source
    stale: bool
    watched: tuple[str | None, ...] = ()
    soft_expiry: float = math.inf


@dataclass
class CacheStats:
    """Counters since start, for /health/ready; /metrics counts the same events by kind
    (services/platform/telemetry.py)."""

    l1_hits: int = 0
    l2_hits: int = 0
    misses: int = 0
    computed: int = 0
    undecodable: int = 0
    stale_serves: int = 0
    invalidations: int = 0
    stores_skipped: int = 0
    redis_errors: int = 0
    bypassed: int = 0
    background_refreshes: int = 0
    refreshes_deferred: int = 0
    server_changes: int = 0

    @property
    def hits(self) -> int:
        return self.l1_hits + self.l2_hits

    def as_dict(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "l1_hits": self.l1_hits,
            "l2_hits": self.l2_hits,
            "misses": self.misses,
            "computed": self.computed,
            "undecodable": self.undecodable,
            "stale_serves": self.stale_serves,
            "invalidations": self.invalidations,
            "stores_skipped": self.stores_skipped,
            "redis_errors": self.redis_errors,
            "bypassed": self.bypassed,
            "background_refreshes": self.background_refreshes,
            "refreshes_deferred": self.refreshes_deferred,
            "server_changes": self.server_changes,
        }


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    value: T
    versions: str
    stamp: str
    soft_expiry: float
    hard_expiry: float


@dataclass(frozen=True, slots=True)
class Spec(Generic[T]):
    """What to read: the entry's key, its tags, how to decode and how to compute it."""

    tenant_id: uuid.UUID
    kind: str
    key: str
    tags: tuple[str, ...]
    value_type: type[T]
    compute: Callable[[], Awaitable[T]]
    watch: tuple[str, ...] = ()

    @property
    def entry_key(self) -> str:
        return tenant_key(self.tenant_id, self.kind, self.key)

    def redis_keys(self) -> list[str]:
        return [
            tenant_key(self.tenant_id, "epoch"),
            self.entry_key,
            *(tenant_key(self.tenant_id, "tag", tag) for tag in self.tags),
            *(tenant_key(self.tenant_id, name) for name in self.watch),
        ]


class ServerIdentity:
    """The run_id of the Redis server this process talks to, as last seen.

    ``connected`` is the client's ``redis_connect_func``: every new connection (a reconnect
    after a restart or a failover included) asks the server's run_id before its first command,
    so a read sent to a server this process has not identified is known for what it is.
    ``on_change`` runs when the run_id changes (not when it is first learned).
    """

    def __init__(self) -> None:
        self.run_id = ""
        self.on_change: Callable[[str, str], None] = lambda previous, current: None

    async def connected(self, connection: Connection) -> None:
        await connection.on_connect()
        await connection.send_command("INFO", "server")
        info = await connection.read_response()
        found = RUN_ID.search(info if isinstance(info, bytes) else str(info).encode())
        if found is None:
            raise RedisError("INFO server named no run_id")
        self.identified(found.group(1).decode())

    def identified(self, run_id: str) -> None:
        previous, self.run_id = self.run_id, run_id
        if previous and previous != run_id:
            self.on_change(previous, run_id)


class CacheUnavailable(RuntimeError):
    """Redis could not be reached (or the breaker is open): the caller must fall back."""


def tenant_key(tenant_id: uuid.UUID, *parts: str) -> str:
    return ":".join((_tenant_prefix(tenant_id), *parts))


@functools.lru_cache(maxsize=4096)
def _tenant_prefix(tenant_id: uuid.UUID) -> str:
    """Made once per tenant: a read builds a dozen keys, and str(UUID) is not free."""
    return f"tenant:{{{tenant_id}}}"


class Tokens:
    """Fresh version tokens, unique across processes and restarts (a random prefix drawn per
    process, then a counter): as good as random for a version, at a fraction of the cost."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(6)
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"
