"""Background jobs on arq: two queues, enqueueing with a durable fallback, and dead letters.

URGENT (alerts, notifications, cache invalidation) is always drained before NORMAL (statistics
refreshes, reports). A job that cannot be enqueued because Redis is down goes to the
``job_outbox`` table and is moved to its queue when Redis answers again; a job that fails every
try goes to ``dead_letter_jobs`` with its payload and last error. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import Channel, DeadLetter, DeliveryStatus, NotificationDelivery, OutboxJob
from services.platform.cache import Cache, CacheUnavailable
from services.platform.db import SessionFactory

REFRESH_STATISTICS = "refresh_statistics"
CHECK_THRESHOLDS = "check_thresholds"
SEND_NOTIFICATION_EMAIL = "send_notification_email"
INVALIDATE_CACHE = "invalidate_cache"
SCAN_CERTIFICATE = "scan_certificate"
BUILD_EXPORT = "build_export"
IMPORT_ROSTER = "import_roster"
SEND_PASSWORD_RESET = "send_password_reset"
OUTBOX_BATCH = 100
STALE_EMAIL_BATCH = 1000
CRON_LAST_RUN = "rollcall:cron:last-run"
RUNNING_SCAN = 200  # more than all workers together ever run at once
logger = logging.getLogger(__name__)


class Queue(StrEnum):
    URGENT = "rollcall:queue:urgent"
    NORMAL = "rollcall:queue:normal"


async def enqueue(
    redis: ArqRedis,
    session: AsyncSession,
    function: str,
    *args: Any,
    queue: Queue,
    job_id: str | None = None,
    defer_seconds: float = 0,
) -> None:
    """Queue ``function(*args)``; with ``job_id``, a job already queued under it is not repeated.

    When Redis fails the job is written to the outbox instead (in a transaction of its own on
    ``session``, which must have none open), so committed work never loses its follow-up.
    """
    try:
        await redis.enqueue_job(
            function,
            *args,
            _queue_name=queue.value,
            _job_id=job_id,
            _defer_by=defer_seconds or None,
        )
    except (RedisError, OSError):
        logger.warning("Redis refused %s; keeping it in the outbox", function, exc_info=True)
        async with session.begin():
            session.add(
                OutboxJob(
                    queue=queue.value,
                    job_id=job_id,
                    function=function,
                    args=list(args),
                    defer_seconds=defer_seconds,
                )
            )


async def enqueue_row_job(
    redis: ArqRedis,
    session: AsyncSession,
    function: str,
    tenant_id: uuid.UUID,
    row_id: uuid.UUID,
    *,
    defer_seconds: float = 0,
) -> None:
    """Queue ``function(tenant_id, row_id)`` on the normal queue, once per row: the job that
    works on a row a request has just committed (a scan, an export's build, an import)."""
    await enqueue(
        redis,
        session,
        function,
        str(tenant_id),
        str(row_id),
        queue=Queue.NORMAL,
        job_id=f"{function}:{row_id}",
        defer_seconds=defer_seconds,
    )


async def drain_outbox(*, redis: ArqRedis, session_factory: SessionFactory) -> int:
    """Move outbox jobs to their queues (oldest first); how many moved. Safe to run anywhere."""
    moved = 0
    while True:
        async with session_factory() as session, session.begin():
            jobs = list(
                await session.scalars(
                    select(OutboxJob)
                    .order_by(OutboxJob.id)
                    .limit(OUTBOX_BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            for job in jobs:
                await redis.enqueue_job(
                    job.function,
                    *job.args,
                    _queue_name=job.queue,
                    _job_id=job.job_id,
                    _defer_by=job.defer_seconds or None,
                )
                await session.delete(job)
        moved += len(jobs)
        if len(jobs) < OUTBOX_BATCH:
            return moved


async def schedule_statistics_refresh(
    redis: ArqRedis, session: AsyncSession, *, delay_seconds: int, now: float
) -> None:
    """Debounce: every change in one ``delay_seconds`` window shares the refresh at its end.

    The job id names the window, so a change made while a refresh runs falls into the next
    window and gets a refresh of its own; none is lost and many marks cost one refresh.
    """
    window = max(delay_seconds, 1)
    window_end = (math.floor(now / window) + 1) * window
    await enqueue(
        redis,
        session,
        REFRESH_STATISTICS,
        queue=Queue.NORMAL,
        job_id=f"{REFRESH_STATISTICS}:{window_end}",
        defer_seconds=max(window_end - now, 0),
    )


async def schedule_threshold_check(
    redis: ArqRedis,
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    student_ids: Sequence[uuid.UUID],
) -> None:
    """Check the students' standing now, on the urgent queue (MAHROOM alerts are immediate)."""
    await enqueue(
        redis,
        session,
        CHECK_THRESHOLDS,
        str(tenant_id),
        [str(key) for key in student_ids],
        queue=Queue.URGENT,
    )


async def schedule_emails(
    redis: ArqRedis, session: AsyncSession, *, notification_ids: Sequence[uuid.UUID]
) -> None:
    """Queue the mail of every pending e-mail delivery of these notifications, once each.
    ``session`` must have no transaction open (a job Redis refuses goes to the outbox)."""
    if not notification_ids:
        return
    async with session.begin():
        deliveries = list(
            await session.scalars(
                select(NotificationDelivery.id).where(
                    NotificationDelivery.notification_id.in_(notification_ids),
                    NotificationDelivery.channel == Channel.EMAIL,
                    NotificationDelivery.status == DeliveryStatus.PENDING,
                )
            )
        )
    for delivery_id in deliveries:
        await enqueue(
            redis,
            session,
            SEND_NOTIFICATION_EMAIL,
            delivery_id,
            queue=Queue.URGENT,
            job_id=email_job_id(delivery_id),
        )


async def invalidate_or_schedule(
    cache: Cache,
    queue: ArqRedis,
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    tags: Sequence[str],
    touch: Sequence[str] = (),
) -> None:
    """Invalidate ``tags`` (and touch ``touch``) now; when Redis refuses, durably later
    (``schedule_cache_invalidation``). ``session`` must have no transaction open."""
    try:
        await cache.invalidate(tenant_id=tenant_id, tags=tags, touch=touch)
    except CacheUnavailable:
        await schedule_cache_invalidation(queue, session, tenant_id=tenant_id, tags=tags)


def email_job_id(delivery_id: uuid.UUID | str) -> str:
    """One job id per delivery, so that a queued or running send is never queued twice."""
    return f"{SEND_NOTIFICATION_EMAIL}:{delivery_id}"


async def requeue_stale_emails(
    *, redis: ArqRedis, session_factory: SessionFactory, older_than: datetime
) -> int:
    """Queue again the e-mail deliveries still PENDING since before ``older_than``: their job
    was lost (Redis restarted without its last writes, say, or kept the job's key but not its
    queue entry). A job still queued or running is not repeated; how many were queued anew."""
    async with session_factory() as session:
        async with session.begin():
            stale = list(
                await session.scalars(
                    select(NotificationDelivery.id)
                    .where(
                        NotificationDelivery.status == DeliveryStatus.PENDING,
                        NotificationDelivery.channel == Channel.EMAIL,
                        NotificationDelivery.updated_at < older_than,
                    )
                    .order_by(NotificationDelivery.updated_at)
                    .limit(STALE_EMAIL_BATCH)
                )
            )
        queued = 0
        for delivery_id in stale:
            job_id = email_job_id(delivery_id)
            waiting = await redis.zscore(Queue.URGENT.value, job_id) is not None
            if waiting or await redis.exists(in_progress_key_prefix + job_id):
                continue
            # Not queued, not running: whatever arq still keeps under the id (a job key whose
            # queue entry was lost, a result) would make it refuse the id.
            await redis.delete(job_key_prefix + job_id, result_key_prefix + job_id)
            job = await redis.enqueue_job(
                SEND_NOTIFICATION_EMAIL,
                delivery_id,
                _queue_name=Queue.URGENT.value,
                _job_id=job_id,
            )
            queued += job is not None
    return queued


async def schedule_cache_invalidation(
    redis: ArqRedis, session: AsyncSession, *, tenant_id: uuid.UUID, tags: Sequence[str]
) -> None:
    """Retry an invalidation Redis refused: while Redis is down this lands in the outbox, which
    API processes replay before they trust the cache again (``replay_invalidations``)."""
    await enqueue(redis, session, INVALIDATE_CACHE, str(tenant_id), list(tags), queue=Queue.URGENT)


async def replay_invalidations(
    *, session_factory: SessionFactory, apply: Callable[[uuid.UUID, list[str]], Awaitable[None]]
) -> int:
    """Apply the invalidations waiting in the outbox (and drop them); how many were applied.

    A row is deleted only in the transaction that applied it, so a failure leaves it for the
    next try or for the worker's outbox drain.
    """
    async with session_factory() as session, session.begin():
        jobs = list(
            await session.scalars(
                select(OutboxJob)
                .where(OutboxJob.function == INVALIDATE_CACHE)
                .order_by(OutboxJob.id)
                .with_for_update(skip_locked=True)
            )
        )
        for job in jobs:
            tenant_id, tags = job.args
            await apply(uuid.UUID(tenant_id), list(tags))
            await session.delete(job)
    return len(jobs)


async def record_dead_letter(
    session: AsyncSession,
    *,
    queue: str,
    job_id: str,
    function: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    tries: int,
    error: str,
) -> None:
    async with session.begin():
        session.add(
            DeadLetter(
                queue=queue,
                job_id=job_id,
                function=function,
                args=list(args),
                kwargs=kwargs,
                tries=tries,
                error=error,
            )
        )


async def dead_letters(session: AsyncSession, *, include_retried: bool = False) -> list[DeadLetter]:
    query = select(DeadLetter).order_by(DeadLetter.id)
    if not include_retried:
        query = query.where(DeadLetter.retried_at.is_(None))
    return list(await session.scalars(query))


async def retry_dead_letters(
    *, redis: ArqRedis, session_factory: SessionFactory, letter_id: int | None = None
) -> list[int]:
    """Requeue one dead letter (or all not yet retried) as new jobs; the ids requeued."""
    async with session_factory() as session, session.begin():
        query = select(DeadLetter).where(DeadLetter.retried_at.is_(None)).with_for_update()
        if letter_id is not None:
            query = query.where(DeadLetter.id == letter_id)
        letters = list(await session.scalars(query.order_by(DeadLetter.id)))
        for letter in letters:
            await redis.enqueue_job(
                letter.function, *letter.args, _queue_name=letter.queue, **letter.kwargs
            )
        if letters:
            await session.execute(
                update(DeadLetter)
                .where(DeadLetter.id.in_([letter.id for letter in letters]))
                .values(retried_at=func.now())
            )
    return [letter.id for letter in letters]


async def queue_report(redis: ArqRedis, session: AsyncSession) -> dict[str, Any]:
    """Per queue: jobs waiting (queued or deferred), running and dead-lettered (not yet
    retried); jobs kept in the outbox, and when each cron job last finished."""
    dead = await dead_letter_counts(session)
    last_runs = await redis.hgetall(CRON_LAST_RUN)
    queues = {}
    for queue in Queue:
        total = await redis.zcard(queue.value)
        running = await _running(redis, queue)
        queues[queue.value] = {
            "waiting": total - running,
            "running": running,
            "deadLetters": dead[queue.value],
        }
    return {
        "queues": queues,
        "outbox": await outbox_size(session),
        "cronLastRun": {name.decode(): at.decode() for name, at in sorted(last_runs.items())},
    }


async def _running(redis: ArqRedis, queue: Queue) -> int:
    """A running job stays in its queue until it ends; workers take from the front."""
    ready = await redis.zrangebyscore(queue.value, "-inf", "+inf", start=0, num=RUNNING_SCAN)
    if not ready:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in ready:
            pipe.exists(in_progress_key_prefix + job_id.decode())
        return sum(await pipe.execute())


async def dead_letter_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(DeadLetter.queue, func.count())
        .where(DeadLetter.retried_at.is_(None))
        .group_by(DeadLetter.queue)
    )
    counts = {queue.value: 0 for queue in Queue}
    counts.update({queue: count for queue, count in rows})
    return counts


async def outbox_size(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(OutboxJob)) or 0
