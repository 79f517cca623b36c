"""Attendance alerts: after marks, and hourly for every student as a safety net."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from services.alerts import check_thresholds as check
from services.models import Student

HOURLY_BATCH = 500


async def check_thresholds(ctx: dict[str, Any], tenant_id: str, student_ids: list[str]) -> int:
    """Alert the given students whose standing crossed a threshold; how many were notified."""
    created = await check(
        session_factory=ctx["session_factory"],
        tenant_id=uuid.UUID(tenant_id),
        student_ids=[uuid.UUID(key) for key in student_ids],
    )
    return len(created)


async def check_all_thresholds(ctx: dict[str, Any]) -> int:
    """Every student of every tenant, in batches (catches anything a lost job missed)."""
    session_factory = ctx["session_factory"]
    async with session_factory() as session:
        students = (await session.execute(select(Student.tenant_id, Student.id))).all()
    notified = 0
    by_tenant: dict[uuid.UUID, list[uuid.UUID]] = {}
    for tenant_id, student_id in students:
        by_tenant.setdefault(tenant_id, []).append(student_id)
    for tenant_id, ids in by_tenant.items():
        for start in range(0, len(ids), HOURLY_BATCH):
            created = await check(
                session_factory=session_factory,
                tenant_id=tenant_id,
                student_ids=ids[start : start + HOURLY_BATCH],
            )
            notified += len(created)
    return notified
