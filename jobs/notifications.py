"""Attendance alerts (after marks, and hourly as a safety net) and their e-mails."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from jobs.platform import MAX_TRIES
from services.alerts import check_thresholds as check
from services.live import publish_notifications
from services.models import Student
from services.notifications import deliver_email
from services.platform.settings import Settings
from services.queue import requeue_stale_emails as requeue
from services.queue import schedule_emails

# Longer than an e-mail waits for its next try when all is well: a try takes at most 30 s,
# the backoff between tries 1 or 2 s, and each try stamps the delivery's updated_at.
STALE_EMAIL_AFTER = timedelta(minutes=2)

HOURLY_BATCH = 500


async def _check(ctx: dict[str, Any], tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> int:
    settings: Settings = ctx["settings"]
    created = await check(
        session_factory=ctx["session_factory"],
        tenant_id=tenant_id,
        student_ids=ids,
        email_available=settings.smtp_url is not None,
    )
    await publish_notifications(ctx["cache"].redis, tenant_id=tenant_id, notifications=created)
    async with ctx["session_factory"]() as session:
        await schedule_emails(ctx["redis"], session, notification_ids=[n.id for n in created])
    return len(created)


async def check_thresholds(ctx: dict[str, Any], tenant_id: str, student_ids: list[str]) -> int:
    """Alert the given students whose standing crossed a threshold; how many were notified."""
    return await _check(ctx, uuid.UUID(tenant_id), [uuid.UUID(key) for key in student_ids])


async def check_all_thresholds(ctx: dict[str, Any]) -> int:
    """Every student of every tenant, in batches (catches anything a lost job missed)."""
    async with ctx["session_factory"]() as session:
        students = (await session.execute(select(Student.tenant_id, Student.id))).all()
    by_tenant: dict[uuid.UUID, list[uuid.UUID]] = {}
    for tenant_id, student_id in students:
        by_tenant.setdefault(tenant_id, []).append(student_id)
    notified = 0
    for tenant_id, ids in by_tenant.items():
        for start in range(0, len(ids), HOURLY_BATCH):
            notified += await _check(ctx, tenant_id, ids[start : start + HOURLY_BATCH])
    return notified


async def send_notification_email(ctx: dict[str, Any], delivery_id: int) -> bool:
    """Mail one notification; retried with backoff, marked FAILED after the last try."""
    settings: Settings = ctx["settings"]
    if settings.smtp_url is None:
        raise RuntimeError("ROLLCALL_SMTP_URL is not set; the e-mail cannot be sent")
    return await deliver_email(
        session_factory=ctx["session_factory"],
        delivery_id=delivery_id,
        smtp_url=settings.smtp_url,
        sender=settings.email_from,
        final_try=ctx["job_try"] >= MAX_TRIES,
    )


async def requeue_stale_emails(ctx: dict[str, Any]) -> int:
    """Every minute: e-mails still waiting long after they were queued get their job again."""
    return await requeue(
        redis=ctx["redis"],
        session_factory=ctx["session_factory"],
        older_than=datetime.now(UTC) - STALE_EMAIL_AFTER,
    )
