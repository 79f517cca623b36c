"""Per-user (and per-IP) rate limits shared by every API process: a moving window on Redis.

A limit is named (``dashboard``, ``export``, ``upload``, ``subscription``, ``login``) and
configured in settings; each call counts one operation. Redis failing lets the operation
through (logged): limits protect capacity, and without Redis there is no shared count.

Each window is a Redis list of the times of its last ``limit`` operations, newest first, kept
by one script that counts (or only tests) and answers where the caller stands: one round trip
per operation, on Redis's clock, so API processes whose clocks differ count alike.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services import audit
from services.audit import Origin
from services.models import AuditAction
from services.platform.db import SessionFactory
from services.platform.errors import ErrorCode, ServiceError
from services.platform.settings import RateLimit
from services.platform.telemetry import RATE_LIMIT_DENIALS

logger = logging.getLogger(__name__)

# KEYS: the window; ARGV: limit, window seconds, 1 to count this operation (0: only test).
# Returns {allowed (1|0), operations in the window, milliseconds until it has room again}.
WINDOW_SCRIPT = """
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2]) * 1000
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local times = redis.call('LRANGE', KEYS[1], 0, limit - 1)
local inside = 0
for _, at in ipairs(times) do
  if tonumber(at) > now - window_ms then inside = inside + 1 else break end
end
local allowed = inside < limit
if allowed and ARGV[3] == '1' then
  redis.call('LPUSH', KEYS[1], now)
  redis.call('LTRIM', KEYS[1], 0, limit - 1)
  redis.call('PEXPIRE', KEYS[1], window_ms)
  inside = inside + 1
  table.insert(times, 1, tostring(now))
end
local reset_ms = 0
if inside > 0 then
  reset_ms = tonumber(times[inside]) + window_ms - now
end
return {allowed and 1 or 0, inside, reset_ms}
"""


@dataclass(frozen=True, slots=True)
class Quota:
    """Where a caller stands against one limit after an operation."""

    name: str
    limit: int
    remaining: int
    reset_after: int  # seconds until the window has room again


class RateLimited(ServiceError):
    code = ErrorCode.RATE_LIMIT_EXCEEDED

    def __init__(self, quota: Quota, window_seconds: int) -> None:
        super().__init__(
            f"Rate limit exceeded: at most {quota.limit} {quota.name} operations per "
            f"{window_seconds} s. Retry in {quota.reset_after} s."
        )
        self.quota = quota
        self.window_seconds = window_seconds

    @property
    def retry_after(self) -> int:
        return self.quota.reset_after


class RateLimiter:
    def __init__(self, *, redis: Redis, limits: Callable[[str], RateLimit | None]) -> None:
        self._limits = limits
        self._window = redis.register_script(WINDOW_SCRIPT)

    async def hit(self, name: str, *identity: str) -> Quota | None:
        """Count one operation of ``identity`` against limit ``name``; RateLimited when over.
        None when the limit is off or Redis is unavailable."""
        return self._refuse_when_over(name, await self._apply(name, identity, count=True))

    async def check(self, name: str, *identity: str) -> Quota | None:
        """RateLimited when ``identity`` has no room left under ``name``, else where it stands
        (None when the limit is off or Redis is unavailable); counts nothing (for limits on
        failures, counted by ``hit`` only when an attempt fails)."""
        return self._refuse_when_over(name, await self._apply(name, identity, count=False))

    async def try_hit(self, name: str, *identity: str) -> tuple[bool, Quota | None]:
        """``hit``, except that a refusal is only answered (False), not raised nor counted as a
        denial: for a caller that will run the operation, which is then refused and counted."""
        found = await self._apply(name, identity, count=True)
        if found is None:
            return True, None
        allowed, quota, _ = found
        return allowed, quota

    def _refuse_when_over(self, name: str, found: tuple[bool, Quota, int] | None) -> Quota | None:
        if found is None:
            return None
        allowed, quota, window_seconds = found
        if not allowed:
            RATE_LIMIT_DENIALS.labels(name).inc()
            raise RateLimited(quota, window_seconds)
        return quota

    async def _apply(
        self, name: str, identity: tuple[str, ...], *, count: bool
    ) -> tuple[bool, Quota, int] | None:
        """Whether the operation is allowed, where the caller stands, and the window (s);
        None when the limit is off or Redis is unavailable."""
        limit = self._limits(name)
        if limit is None:
            return None
        key = ":".join(("rate", name, *identity, f"{limit.count}/{limit.seconds}"))
        try:
            allowed, inside, reset_ms = await self._window(
                keys=[key], args=[limit.count, limit.seconds, 1 if count else 0]
            )
        except (RedisError, OSError) as error:
            logger.warning("rate limit %s not applied (Redis unavailable): %s", name, error)
            return None
        quota = Quota(
            name=name,
            limit=limit.count,
            remaining=max(limit.count - int(inside), 0),
            reset_after=max(math.ceil(int(reset_ms) / 1000), 1),
        )
        return bool(allowed), quota, limit.seconds


async def record_refusal(
    session_factory: SessionFactory,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None,
    refused: RateLimited,
    origin: Origin,
    subject: str | None = None,
) -> None:
    """The RATE_LIMIT_EXCEEDED audit entry of one refused operation (its own transaction:
    the operation itself never ran)."""
    await audit.record_alone(
        session_factory,
        tenant_id=tenant_id,
        user_id=user_id,
        action=AuditAction.RATE_LIMIT_EXCEEDED,
        resource="rate_limit",
        resource_id=refused.quota.name,
        success=False,
        origin=origin,
        details={
            "limit": refused.quota.limit,
            "windowSeconds": refused.window_seconds,
            "retryAfter": refused.retry_after,
            **({"subject": subject} if subject else {}),
        },
    )
