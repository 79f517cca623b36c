"""Per-user (and per-IP) rate limits shared by every API process: the ``limits`` library's
moving window on Redis.

A limit is named (``dashboard``, ``export``, ``upload``, ``subscription``, ``login``) and
configured in settings; each call counts one operation. Redis failing lets the operation
through (logged): limits protect capacity, and without Redis there is no shared count.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services import audit
from services.audit import Origin
from services.db import SessionFactory
from services.errors import ErrorCode, ServiceError
from services.models import AuditAction
from services.settings import RateLimit
from services.telemetry import RATE_LIMIT_DENIALS

logger = logging.getLogger(__name__)


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
        self._window = MovingWindowRateLimiter(
            RedisStorage(
                "async+redis://", implementation="redispy", connection_pool=redis.connection_pool
            )
        )

    async def hit(self, name: str, *identity: str) -> Quota | None:
        """Count one operation of ``identity`` against limit ``name``; RateLimited when over.
        None when the limit is off or Redis is unavailable."""
        limit = self._limits(name)
        if limit is None:
            return None
        item = RateLimitItemPerSecond(limit.count, limit.seconds)
        try:
            allowed = await self._window.hit(item, name, *identity)
            quota = await self._quota(name, item, identity)
        except (RedisError, OSError) as error:
            logger.warning("rate limit %s not applied (Redis unavailable): %s", name, error)
            return None
        if not allowed:
            RATE_LIMIT_DENIALS.labels(name).inc()
            raise RateLimited(quota, limit.seconds)
        return quota

    async def check(self, name: str, *identity: str) -> None:
        """RateLimited when ``identity`` has no room left under ``name``; counts nothing (for
        limits on failures, counted by ``hit`` only when an attempt fails)."""
        limit = self._limits(name)
        if limit is None:
            return
        item = RateLimitItemPerSecond(limit.count, limit.seconds)
        try:
            if await self._window.test(item, name, *identity):
                return
            quota = await self._quota(name, item, identity)
        except (RedisError, OSError) as error:
            logger.warning("rate limit %s not checked (Redis unavailable): %s", name, error)
            return
        RATE_LIMIT_DENIALS.labels(name).inc()
        raise RateLimited(quota, limit.seconds)

    async def _quota(self, name: str, item: RateLimitItem, identity: tuple[str, ...]) -> Quota:
        stats = await self._window.get_window_stats(item, name, *identity)
        return Quota(
            name=name,
            limit=item.amount,
            remaining=stats.remaining,
            reset_after=max(math.ceil(stats.reset_time - time.time()), 1),
        )


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
