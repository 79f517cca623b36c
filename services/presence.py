"""Open live connections: a per-user limit and a connection-rate limit shared by every API
process, and this process's own connections.

Each connection holds a lease in Redis: a member of its user's sorted set, scored with the
lease's expiry by Redis's clock. The process renews its leases every ``lease_seconds / 3``, so
the leases of a process that died without closing its connections lapse within
``lease_seconds`` (30 s by default) and stop counting against their users' limits.

Redis failing never refuses a connection: the lease is then kept locally and written back by
the next renewal, and the rate limit is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.auth import Viewer
from services.platform.cache import tenant_key
from services.platform.telemetry import WEBSOCKET_CONNECTIONS
from services.rate_limits import RateLimited, RateLimiter

logger = logging.getLogger(__name__)

LEASE_SECONDS = 30

# KEYS: the user's lease set; ARGV: connection id, per-user limit, lease seconds.
OPEN_SCRIPT = """
local now = redis.call('TIME')
local clock = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', clock)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], clock + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: the user's lease set; ARGV: connection id, lease seconds. One key per call, so that
# every call stays in one Redis Cluster slot.
RENEW_SCRIPT = """
local now = redis.call('TIME')
local clock = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', clock)
redis.call('ZADD', KEYS[1], clock + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class ConnectionRefused(Exception):
    """Over the per-user limit or the connection rate; try again after ``retry_after`` s."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Lease:
    id: str
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    opened_at: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> str:
        return lease_key(self.tenant_id, self.user_id)


def lease_key(tenant_id: uuid.UUID, user_id: uuid.UUID) -> str:
    return tenant_key(tenant_id, "live", "leases", str(user_id))


@dataclass
class Presence:
    """This process's live connections and the limits they are held to."""

    redis: Redis
    per_user: int
    limiter: RateLimiter | None
    lease_seconds: int = LEASE_SECONDS
    leases: dict[str, Lease] = field(default_factory=dict)
    _renewer: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self._open = self.redis.register_script(OPEN_SCRIPT)
        self._renew = self.redis.register_script(RENEW_SCRIPT)

    def start(self) -> None:
        """Renew this process's leases in the background until ``aclose``."""
        self._renewer = asyncio.create_task(self._renew_forever(), name="live-lease-renewal")

    async def open(self, viewer: Viewer) -> Lease:
        """A lease for a new connection of ``viewer``, or ConnectionRefused."""
        lease = Lease(id=secrets.token_hex(8), tenant_id=viewer.tenant_id, user_id=viewer.user_id)
        try:
            await self._check_rate(viewer)
            granted = await self._open(
                keys=[lease.key], args=[lease.id, self.per_user, self.lease_seconds]
            )
        except (RedisError, OSError) as error:
            logger.warning("live: connection admitted without Redis: %s", error)
            granted = 1
        if not granted:
            raise ConnectionRefused(
                f"At most {self.per_user} live connections per user: close one first.",
                retry_after=self.lease_seconds,
            )
        self.leases[lease.id] = lease
        WEBSOCKET_CONNECTIONS.inc()
        return lease

    async def _check_rate(self, viewer: Viewer) -> None:
        if self.limiter is None:
            return
        try:
            await self.limiter.hit("subscription", str(viewer.tenant_id), str(viewer.user_id))
        except RateLimited as refused:
            raise ConnectionRefused(
                f"At most {refused.quota.limit} new live connections per "
                f"{refused.window_seconds} s.",
                retry_after=refused.retry_after,
            ) from None

    async def close(self, lease: Lease) -> None:
        """Release the lease here and in Redis (where it would lapse anyway)."""
        if self.leases.pop(lease.id, None) is not None:
            WEBSOCKET_CONNECTIONS.dec()
        try:
            await self.redis.zrem(lease.key, lease.id)
        except (RedisError, OSError) as error:
            logger.warning("live: lease %s left to lapse: %s", lease.id, error)

    async def renew(self) -> None:
        """Extend every lease of this process (and write back any Redis lost)."""
        if not self.leases:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for lease in list(self.leases.values()):
                await self._renew(
                    keys=[lease.key], args=[lease.id, self.lease_seconds], client=pipe
                )
            await pipe.execute()

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.renew()
            except (RedisError, OSError) as error:
                logger.warning("live: lease renewal failed: %s", error)

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
