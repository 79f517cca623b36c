"""After a statistics refresh: every tenant's ``statistics`` tag renewed, the pending marks the
refresh covered settled, and their live subscribers told (services/cached_reads.py says what
the tag and the marker mean to the cached reads)."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select

from services import statistics
from services.cached_reads import STATISTICS_PENDING, STATISTICS_TAG
from services.live import StatisticsEvent, publish, statistics_channel
from services.models import Tenant
from services.platform.cache import TAG_TTL_SECONDS, Cache, tenant_key
from services.platform.db import SessionFactory

logger = logging.getLogger(__name__)

# KEYS: the pending marker, the statistics tag; ARGV: refresh start (Redis clock), fresh token,
# tag TTL. The snapshot changed, so the tag gets a new version, marker or not (a Redis that lost
# the marker must not keep aggregates from before the refresh). A refresh that started after
# the last mark clears the marker; one that started before it leaves the marker (that mark is
# not in the snapshot yet). Returns 1 when there was a marker.
SETTLE_SCRIPT = """
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
local pending = redis.call('GET', KEYS[1])
if not pending then
  return 0
end
if tonumber(pending) <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
end
return 1
"""


async def refresh_statistics(*, session_factory: SessionFactory, cache: Cache) -> list[uuid.UUID]:
    """Refresh the statistics snapshot, then settle every tenant's pending marks and tell their
    live subscribers; the tenants that had some. The start time is read first, from Redis's
    clock, the one marks use.

    The refresh never waits for the cache: without Redis it still runs, and the cached
    aggregates age out by their TTL (their pending markers settle at the next refresh).
    """
    try:
        seconds, microseconds = await cache.redis.time()
    except (RedisError, OSError, TimeoutError):
        logger.warning("cache Redis unavailable: refreshing without settling", exc_info=True)
        await statistics.refresh_statistics(session_factory=session_factory)
        return []
    await statistics.refresh_statistics(session_factory=session_factory)
    refreshed_at = datetime.now(UTC)
    async with session_factory() as session:
        tenant_ids = list(await session.scalars(select(Tenant.id)))
    settled = await settle_statistics(
        cache.redis, tenant_ids=tenant_ids, refresh_started=seconds + microseconds / 1_000_000
    )
    for tenant_id in settled:
        await publish(cache.redis, statistics_channel(tenant_id), StatisticsEvent(refreshed_at))
    return settled


async def settle_statistics(
    redis: Redis, *, tenant_ids: Sequence[uuid.UUID], refresh_started: float
) -> list[uuid.UUID]:
    """After a refresh: renew every tenant's statistics tag and clear the pending markers the
    refresh covered. The tenants that had pending marks."""
    settle = redis.register_script(SETTLE_SCRIPT)
    async with redis.pipeline(transaction=False) as pipe:
        for tenant_id in tenant_ids:
            await settle(
                keys=[
                    tenant_key(tenant_id, STATISTICS_PENDING),
                    tenant_key(tenant_id, "tag", STATISTICS_TAG),
                ],
                args=[repr(refresh_started), secrets.token_hex(8), TAG_TTL_SECONDS],
                client=pipe,
            )
        results = await pipe.execute()
    return [tenant_id for tenant_id, had in zip(tenant_ids, results, strict=True) if had]
