"""Enqueueing background jobs on arq. Job names are the functions' names in ``jobs.worker``."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence

from arq.connections import ArqRedis
from redis.exceptions import RedisError

REFRESH_STATISTICS = "refresh_statistics"
CHECK_THRESHOLDS = "check_thresholds"
logger = logging.getLogger(__name__)


async def schedule_statistics_refresh(redis: ArqRedis, *, delay_seconds: int, now: float) -> None:
    """Debounce: every change in one ``delay_seconds`` window shares the refresh at its end.

    The job id names the window, so a change made while a refresh runs falls into the next
    window and gets a refresh of its own; none is lost and many marks cost one refresh.
    A failure to enqueue is logged, not raised: the cron refresh catches up.
    """
    window = max(delay_seconds, 1)
    window_end = (math.floor(now / window) + 1) * window
    try:
        await redis.enqueue_job(
            REFRESH_STATISTICS,
            _job_id=f"{REFRESH_STATISTICS}:{window_end}",
            _defer_by=max(window_end - now, 0),
        )
    except (RedisError, OSError):
        logger.warning("could not schedule the statistics refresh; the cron will", exc_info=True)


async def schedule_threshold_check(
    redis: ArqRedis, *, tenant_id: uuid.UUID, student_ids: Sequence[uuid.UUID]
) -> None:
    """Check the students' standing soon; a lost enqueue is caught by the hourly check."""
    try:
        await redis.enqueue_job(CHECK_THRESHOLDS, str(tenant_id), [str(key) for key in student_ids])
    except (RedisError, OSError):
        logger.warning("could not schedule the threshold check; the hourly one will", exc_info=True)


async def queue_depths(redis: ArqRedis) -> dict[str, int]:
    """Jobs waiting (queued or deferred) per queue."""
    return {redis.default_queue_name: await redis.zcard(redis.default_queue_name)}
