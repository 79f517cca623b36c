"""A student's dashboard and weekly attendance, computed from their own records."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.directory import existing
from services.metrics import (
    TREND_WINDOW_DAYS,
    WEEK_DAYS,
    AttendanceCounts,
    Standing,
    Thresholds,
    Trend,
    WeekPoint,
    attendance_rate,
    standing,
    trend,
    weekly_history,
)
from services.models import AttendanceRecord, AttendanceStatus, Student
from services.platform.attributes import from_attributes
from services.platform.errors import Invalid, NotFound
from services.statistics import StudentRank, standing_in_class

MAX_HISTORY_WEEKS = 52


@dataclass(frozen=True, slots=True)
class StudentDashboard:
    student_id: uuid.UUID
    classroom_id: uuid.UUID
    counts: AttendanceCounts
    attendance_rate: float
    class_average: float
    ranking: StudentRank
    trend: Trend
    standing: Standing
    last_updated: datetime
    statistics_calculated_at: datetime


@dataclass(frozen=True, slots=True)
class AttendanceEntry:
    """One attendance record as plain data, so that it can be cached."""

    id: int
    student_id: uuid.UUID
    classroom_id: uuid.UUID
    subject_id: uuid.UUID
    date: date
    period: int
    status: AttendanceStatus
    marked_by: uuid.UUID
    marked_at: datetime

    @classmethod
    def of(cls, record: AttendanceRecord) -> AttendanceEntry:
        return from_attributes(cls, record)


@dataclass(frozen=True, slots=True)
class DayAttendance:
    date: date
    records: list[AttendanceEntry]


@dataclass(frozen=True, slots=True)
class WeeklyAttendance:
    student_id: uuid.UUID
    classroom_id: uuid.UUID
    week_start: date
    days: list[DayAttendance]
    counts: AttendanceCounts

    @property
    def attendance_rate(self) -> float:
        return attendance_rate(self.counts.present, self.counts.counted)


@dataclass(frozen=True, slots=True)
class AttendanceHistory:
    student_id: uuid.UUID
    classroom_id: uuid.UUID
    points: list[WeekPoint]


def counts_by_status() -> tuple[ColumnElement[int], ...]:
    """The columns of ``AttendanceCounts``, in its field order, over the selected records."""
    return (
        counted(),
        with_status(AttendanceStatus.PRESENT),
        with_status(AttendanceStatus.ABSENT),
        with_status(AttendanceStatus.SICK),
        with_status(AttendanceStatus.LEAVE),
    )


def counted(*conditions: ColumnElement[bool]) -> ColumnElement[int]:
    return func.count().filter(
        and_(AttendanceRecord.status != AttendanceStatus.NOT_MARKED, *conditions)
    )


def with_status(status: AttendanceStatus, *conditions: ColumnElement[bool]) -> ColumnElement[int]:
    return func.count().filter(and_(AttendanceRecord.status == status, *conditions))


async def student_dashboard(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    student_id: uuid.UUID,
    thresholds: Thresholds,
    today: date,
    now: datetime,
) -> StudentDashboard:
    """Own figures are live; class average and rank come from the last statistics refresh.
    Two statements: the student with their counts, then the class figures."""
    recent_start = today - timedelta(days=TREND_WINDOW_DAYS - 1)
    previous_start = recent_start - timedelta(days=TREND_WINDOW_DAYS)
    recent = AttendanceRecord.date.between(recent_start, today)
    previous = AttendanceRecord.date.between(previous_start, recent_start - timedelta(days=1))
    row = (
        await session.execute(
            select(
                Student.classroom_id,
                *counts_by_status(),
                counted(recent),
                with_status(AttendanceStatus.PRESENT, recent),
                counted(previous),
                with_status(AttendanceStatus.PRESENT, previous),
            )
            .select_from(Student)
            .outerjoin(
                AttendanceRecord,
                and_(
                    AttendanceRecord.tenant_id == Student.tenant_id,
                    AttendanceRecord.student_id == Student.id,
                ),
            )
            .where(Student.tenant_id == tenant_id, Student.id == student_id)
            .group_by(Student.id)
        )
    ).first()
    if row is None:
        raise NotFound("No such student.")
    classroom_id = row[0]
    counts = AttendanceCounts(*row[1:6])
    in_class = await standing_in_class(
        session, tenant_id=tenant_id, student_id=student_id, classroom_id=classroom_id
    )
    return StudentDashboard(
        student_id=student_id,
        classroom_id=classroom_id,
        counts=counts,
        attendance_rate=attendance_rate(counts.present, counts.counted),
        class_average=in_class.class_average,
        ranking=in_class.rank,
        trend=trend(row[7], row[6], row[9], row[8]),
        standing=standing(counts, thresholds),
        last_updated=now,
        statistics_calculated_at=in_class.calculated_at,
    )


async def weekly_attendance(
    session: AsyncSession, *, tenant_id: uuid.UUID, student_id: uuid.UUID, week_start: date
) -> WeeklyAttendance:
    """The seven days from ``week_start``, each with its records by period."""
    student = await existing(session, Student, tenant_id, student_id)
    week_end = week_start + timedelta(days=WEEK_DAYS - 1)
    records = list(
        await session.scalars(
            select(AttendanceRecord)
            .where(
                AttendanceRecord.tenant_id == student.tenant_id,
                AttendanceRecord.student_id == student.id,
                AttendanceRecord.date.between(week_start, week_end),
            )
            .order_by(AttendanceRecord.date, AttendanceRecord.period)
        )
    )
    by_day: dict[date, list[AttendanceEntry]] = defaultdict(list)
    tally: dict[AttendanceStatus, int] = defaultdict(int)
    for record in records:
        by_day[record.date].append(AttendanceEntry.of(record))
        tally[record.status] += 1
    counts = AttendanceCounts(
        counted=len(records) - tally[AttendanceStatus.NOT_MARKED],
        present=tally[AttendanceStatus.PRESENT],
        absent=tally[AttendanceStatus.ABSENT],
        sick=tally[AttendanceStatus.SICK],
        leave=tally[AttendanceStatus.LEAVE],
    )
    days = [
        DayAttendance(date=day, records=by_day.get(day, []))
        for day in (week_start + timedelta(days=offset) for offset in range(WEEK_DAYS))
    ]
    return WeeklyAttendance(
        student_id=student.id,
        classroom_id=student.classroom_id,
        week_start=week_start,
        days=days,
        counts=counts,
    )


def check_history_weeks(weeks: int) -> None:
    if not 1 <= weeks <= MAX_HISTORY_WEEKS:
        raise Invalid("weeks", f"weeks must be from 1 to {MAX_HISTORY_WEEKS}.")


async def attendance_history(
    session: AsyncSession, *, tenant_id: uuid.UUID, student_id: uuid.UUID, today: date, weeks: int
) -> AttendanceHistory:
    """The ``weeks`` weeks up to ``today``'s, each with its own and its cumulative rate; the
    last cumulative rate is the dashboard's. One row per marked day is read (at most a few
    hundred a school year)."""
    check_history_weeks(weeks)
    student = await existing(session, Student, tenant_id, student_id)
    rows = await session.execute(
        select(AttendanceRecord.date, counted(), with_status(AttendanceStatus.PRESENT))
        .where(
            AttendanceRecord.tenant_id == student.tenant_id,
            AttendanceRecord.student_id == student.id,
            AttendanceRecord.date <= today,
        )
        .group_by(AttendanceRecord.date)
    )
    return AttendanceHistory(
        student_id=student.id,
        classroom_id=student.classroom_id,
        points=weekly_history(rows.all(), today=today, weeks=weeks),
    )
