"""Attendance alerts: each time a student's standing becomes non-OK, they are told once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.dashboards import counts_by_status
from services.metrics import AttendanceCounts, Standing, Thresholds, attendance_rate, standing
from services.models import (
    AlertState,
    AttendanceRecord,
    Notification,
    NotificationType,
    Severity,
    Student,
    Tenant,
)
from services.notifications import Draft, notify
from services.platform.db import SessionFactory
from services.tenants import tenant_thresholds


@dataclass(frozen=True, slots=True)
class Alert:
    kind: NotificationType
    severity: Severity
    title: str
    message: str


ALERTS = {
    Standing.MAHROOM: Alert(
        NotificationType.MAHROOM_ALERT,
        Severity.ERROR,
        "Attendance: barred (MAHROOM)",
        "Your attendance rate is {rate}%, at or below {limit}%. Contact your school now.",
    ),
    Standing.WARNING: Alert(
        NotificationType.ATTENDANCE_WARNING,
        Severity.WARNING,
        "Attendance warning",
        "Your attendance rate is {rate}%, below {limit}%.",
    ),
    Standing.TASDIQ: Alert(
        NotificationType.TASDIQ_ALERT,
        Severity.WARNING,
        "Medical certificates required (TASDIQ)",
        "Your attendance rate is {rate}%, below {limit}%, with sick or leave absences: "
        "upload the certificates that cover them.",
    ),
}


def rate_for_people(percent: float, *, below: Decimal | None = None) -> str:
    """A rate as people read it: one decimal, rounded to nearest, none when whole; but never
    shown at or above ``below`` when it is under it (79.96 below 80 reads "79.9", not "80").
    The API's Float fields stay exact."""
    exact = Decimal(str(percent))
    shown = exact.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    if below is not None and exact < below <= shown:
        shown = exact.quantize(Decimal("0.1"), rounding=ROUND_DOWN)
    return _trimmed(shown)


def threshold_for_people(limit: Decimal) -> str:
    """A threshold as the school set it, without trailing zeros ("85.5", "75")."""
    return _trimmed(limit)


def _trimmed(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _limit(state: Standing, thresholds: Thresholds) -> Decimal:
    return {
        Standing.MAHROOM: thresholds.mahroom,
        Standing.WARNING: thresholds.warning,
        Standing.TASDIQ: thresholds.tasdiq,
    }[state]


async def _counts(
    session: AsyncSession, tenant_id: uuid.UUID, student_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, AttendanceCounts]:
    rows = await session.execute(
        select(AttendanceRecord.student_id, *counts_by_status())
        .where(
            AttendanceRecord.tenant_id == tenant_id, AttendanceRecord.student_id.in_(student_ids)
        )
        .group_by(AttendanceRecord.student_id)
    )
    return {row[0]: AttendanceCounts(*row[1:]) for row in rows}


async def check_thresholds(
    *,
    session_factory: SessionFactory,
    tenant_id: uuid.UUID,
    student_ids: Sequence[uuid.UUID],
    email_available: bool = False,
) -> list[Notification]:
    """Compare each student's standing with the last one seen; alert on every new crossing.

    Safe to repeat and to run concurrently: alert states are locked, and the notification of
    the n-th crossing has a dedupe key, so no crossing is ever notified twice. Channels follow
    the student's preferences; e-mail only when ``email_available`` (SMTP configured).
    """
    created: list[Notification] = []
    async with session_factory() as session, session.begin():
        tenant = await session.get(Tenant, tenant_id)
        students = list(
            await session.scalars(
                select(Student).where(Student.tenant_id == tenant_id, Student.id.in_(student_ids))
            )
        )
        if tenant is None or not students:
            return created
        ids = [student.id for student in students]
        await session.execute(
            insert(AlertState)
            .values([{"tenant_id": tenant_id, "student_id": key} for key in ids])
            .on_conflict_do_nothing(index_elements=["student_id"])
        )
        states = {
            state.student_id: state
            for state in await session.scalars(
                select(AlertState)
                .where(AlertState.student_id.in_(ids))
                .order_by(AlertState.student_id)
                .with_for_update()
            )
        }
        counts = await _counts(session, tenant_id, ids)
        thresholds = tenant_thresholds(tenant)
        for student in students:
            student_counts = counts.get(student.id, AttendanceCounts())
            current = standing(student_counts, thresholds)
            state = states[student.id]
            if current.value == state.standing:
                continue
            state.standing = current.value
            state.updated_at = func.now()
            if current is Standing.OK:
                continue
            state.crossings += 1
            if student.user_id is None:
                continue
            alert = ALERTS[current]
            rate = attendance_rate(student_counts.present, student_counts.counted)
            notification = await notify(
                session,
                tenant_id=tenant_id,
                user_id=student.user_id,
                draft=Draft(
                    kind=alert.kind,
                    severity=alert.severity,
                    title=alert.title,
                    message=alert.message.format(
                        rate=rate_for_people(rate, below=_limit(current, thresholds)),
                        limit=threshold_for_people(_limit(current, thresholds)),
                    ),
                    action_url="/dashboard",
                    details={"studentId": str(student.id), "standing": current.value, "rate": rate},
                    dedupe_key=f"standing:{student.id}:{state.crossings}",
                ),
                email_available=email_available,
            )
            if notification is not None:
                created.append(notification)
    return created
