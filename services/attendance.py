"""Marking the register: validation, rights and one upsert per call."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from arq.connections import ArqRedis
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.access import Access
from services.cached_reads import STATISTICS_PENDING, mark_tags
from services.dashboards import AttendanceEntry
from services.live import MarksEvent, classroom_channel, publish
from services.models import (
    AttendanceRecord,
    AttendanceStatus,
    Classroom,
    ClassroomSubject,
    Student,
    Subject,
)
from services.platform.cache import Cache
from services.platform.db import SessionFactory
from services.platform.errors import Invalid, NotFound
from services.queue import (
    invalidate_or_schedule,
    schedule_statistics_refresh,
    schedule_threshold_check,
)

MAX_MARKS_PER_CALL = 1000
# A register is taken during its school year: a mark further back is a typo or an attack.
MARKABLE_DAYS_BACK = 366


@dataclass(frozen=True, slots=True)
class Mark:
    student_id: uuid.UUID
    status: AttendanceStatus


def validate_marks_shape(
    *, day: date, period: int, marks: Sequence[Mark], today: date, periods_per_day: int
) -> None:
    """Checks that need no database: each failure names the input field."""
    if day > today:
        raise Invalid("date", f"The date {day.isoformat()} is in the future (today is {today}).")
    if day < today - timedelta(days=MARKABLE_DAYS_BACK):
        raise Invalid(
            "date",
            f"The date {day.isoformat()} is more than a year before today: registers are "
            "taken during their school year.",
        )
    if not 1 <= period <= periods_per_day:
        raise Invalid("period", f"The period must be from 1 to {periods_per_day}.")
    if not marks:
        raise Invalid("marks", "At least one mark is required.")
    if len(marks) > MAX_MARKS_PER_CALL:
        raise Invalid("marks", f"At most {MAX_MARKS_PER_CALL} marks fit in one call.")
    seen: set[uuid.UUID] = set()
    for index, mark in enumerate(marks):
        if mark.student_id in seen:
            raise Invalid(f"marks[{index}].studentId", "This student is marked twice in one call.")
        seen.add(mark.student_id)


async def mark_attendance(
    *,
    session_factory: SessionFactory,
    access: Access,
    classroom_id: uuid.UUID,
    day: date,
    period: int,
    subject_id: uuid.UUID,
    marks: Sequence[Mark],
    today: date,
    periods_per_day: int,
    queue: ArqRedis,
    cache: Cache,
    refresh_delay_seconds: int,
    now: float,
) -> list[AttendanceEntry]:
    """Record one period's marks for a classroom, replacing earlier marks for that period.

    All or nothing: any invalid mark rejects the whole call and nothing is written. The write
    is an upsert of the same values, so it is repeated after a transient connection error (a
    commit whose answer was lost only writes the same marks again). After the commit the
    cached reads of the students and classroom are invalidated (queued durably when Redis is
    down), the marks are published to the classroom's live subscribers, and the statistics
    refresh (debounced) and the marked students' alert check are queued.
    """
    validate_marks_shape(
        day=day, period=period, marks=marks, today=today, periods_per_day=periods_per_day
    )
    tenant_id = access.tenant_id

    async def write(session: AsyncSession) -> tuple[str, list[AttendanceEntry]]:
        async with session.begin():
            classroom = await session.scalar(
                select(Classroom.id).where(
                    Classroom.tenant_id == tenant_id, Classroom.id == classroom_id
                )
            )
            if classroom is None:
                raise NotFound("No such classroom.")
            await access.ensure_can_mark(classroom_id)
            subject_name = await session.scalar(
                select(Subject.name)
                .join(ClassroomSubject, ClassroomSubject.subject_id == Subject.id)
                .where(
                    ClassroomSubject.tenant_id == tenant_id,
                    ClassroomSubject.classroom_id == classroom_id,
                    ClassroomSubject.subject_id == subject_id,
                )
            )
            if subject_name is None:
                raise Invalid("subjectId", "This subject is not taught in this classroom.")
            enrolled = set(
                await session.scalars(
                    select(Student.id).where(
                        Student.tenant_id == tenant_id,
                        Student.classroom_id == classroom_id,
                        Student.id.in_([mark.student_id for mark in marks]),
                    )
                )
            )
            for index, mark in enumerate(marks):
                if mark.student_id not in enrolled:
                    raise Invalid(f"marks[{index}].studentId", "No such student in this classroom.")
            statement = insert(AttendanceRecord).values(
                [
                    {
                        "tenant_id": tenant_id,
                        "student_id": mark.student_id,
                        "classroom_id": classroom_id,
                        "subject_id": subject_id,
                        "date": day,
                        "period": period,
                        "status": mark.status,
                        "marked_by": access.viewer.user_id,
                    }
                    for mark in marks
                ]
            )
            statement = statement.on_conflict_do_update(
                index_elements=["tenant_id", "student_id", "date", "period"],
                set_={
                    "status": statement.excluded.status,
                    "subject_id": statement.excluded.subject_id,
                    "classroom_id": statement.excluded.classroom_id,
                    "marked_by": statement.excluded.marked_by,
                    "marked_at": func.now(),
                },
            ).returning(AttendanceRecord)
            records = [
                AttendanceEntry.of(record)
                for record in await session.scalars(
                    statement, execution_options={"populate_existing": True}
                )
            ]
        return subject_name, records

    subject_name, records = await session_factory.retrying(write)
    async with session_factory() as session:
        await after_marks_changed(
            session,
            tenant_id=tenant_id,
            classroom_id=classroom_id,
            records=records,
            subject_names={subject_id: subject_name},
            queue=queue,
            cache=cache,
            refresh_delay_seconds=refresh_delay_seconds,
            now=now,
        )
    order = {mark.student_id: index for index, mark in enumerate(marks)}
    return sorted(records, key=lambda record: order[record.student_id])


async def after_marks_changed(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    classroom_id: uuid.UUID,
    records: Sequence[AttendanceEntry],
    subject_names: Mapping[uuid.UUID, str],
    queue: ArqRedis,
    cache: Cache,
    refresh_delay_seconds: int,
    now: float,
) -> None:
    """What follows committed changes to a classroom's records: the cached reads of its
    students and the classroom are invalidated (queued durably when Redis is down), the
    records are published to live subscribers (one event per subject), and the statistics
    refresh (debounced) and the students' alert check are queued. ``session`` must have no
    transaction open."""
    if not records:
        return
    committed_at = datetime.now(UTC)
    student_ids = list(dict.fromkeys(record.student_id for record in records))
    tags = mark_tags(classroom_id, student_ids)
    await invalidate_or_schedule(
        cache, queue, session, tenant_id=tenant_id, tags=tags, touch=(STATISTICS_PENDING,)
    )
    # After the invalidation: a dashboard recomputed on this event already includes the marks.
    by_subject: dict[uuid.UUID, list[AttendanceEntry]] = {}
    for record in records:
        by_subject.setdefault(record.subject_id, []).append(record)
    for subject_id, subject_records in by_subject.items():
        await publish(
            cache.redis,
            classroom_channel(tenant_id, classroom_id),
            MarksEvent(
                classroom_id=classroom_id,
                subject_id=subject_id,
                subject_name=subject_names[subject_id],
                records=subject_records,
                committed_at=committed_at,
            ),
        )
    await schedule_statistics_refresh(queue, session, delay_seconds=refresh_delay_seconds, now=now)
    await schedule_threshold_check(queue, session, tenant_id=tenant_id, student_ids=student_ids)


async def period_marks(
    *,
    session_factory: SessionFactory,
    access: Access,
    classroom_id: uuid.UUID,
    day: date,
    period: int,
) -> list[AttendanceEntry]:
    """The marks of one period taken in a classroom, by student: what a register shows before
    it is taken again. For those who may mark it (its teachers, admins): students never see
    their classmates' marks."""
    await access.ensure_can_mark(classroom_id)

    async def read(session: AsyncSession) -> list[AttendanceEntry]:
        records = await session.scalars(
            select(AttendanceRecord)
            .where(
                AttendanceRecord.tenant_id == access.tenant_id,
                AttendanceRecord.classroom_id == classroom_id,
                AttendanceRecord.date == day,
                AttendanceRecord.period == period,
            )
            .order_by(AttendanceRecord.student_id)
        )
        return [AttendanceEntry.of(record) for record in records]

    return await session_factory.reading(read)
