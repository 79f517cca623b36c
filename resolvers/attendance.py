"""Marking attendance and reading classrooms."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from resolvers.context import Info, parse_id
from resolvers.pagination import Page, decode_cursor, encode_cursor, page_size, relay_page
from services import attendance, directory
from services.dashboards import AttendanceEntry
from services.models import AttendanceStatus, Classroom, Student
from services.tenants import tenant_today

STUDENT_CURSOR = "student"
CLASSROOM_CURSOR = "classroom"


async def mark_attendance(
    info: Info,
    *,
    classroom_id: str,
    day: date,
    period: int,
    subject_id: str,
    marks: Sequence[tuple[str, AttendanceStatus]],
) -> list[AttendanceEntry]:
    context = info.context
    classroom = parse_id(classroom_id, "classroomId")
    subject = parse_id(subject_id, "subjectId")
    parsed = [
        attendance.Mark(student_id=parse_id(student, f"marks[{index}].studentId"), status=status)
        for index, (student, status) in enumerate(marks)
    ]
    tenant = await context.tenant()
    now = context.now()
    return await attendance.mark_attendance(
        session_factory=context.session_factory,
        access=context.access,
        classroom_id=classroom,
        day=day,
        period=period,
        subject_id=subject,
        marks=parsed,
        today=tenant_today(tenant, now),
        periods_per_day=tenant.periods_per_day,
        queue=context.redis,
        cache=context.cache,
        refresh_delay_seconds=context.settings.statistics_refresh_delay_seconds,
        now=now.timestamp(),
    )


async def period_marks(
    info: Info, classroom_id: str, day: date, period: int
) -> list[AttendanceEntry]:
    context = info.context
    return await attendance.period_marks(
        session_factory=context.session_factory,
        access=context.access,
        classroom_id=parse_id(classroom_id, "classroomId"),
        day=day,
        period=period,
    )


async def classroom(info: Info, classroom_id: str) -> Classroom | None:
    """The classroom, or None when no classroom has that id in the viewer's tenant."""
    context = info.context
    key = parse_id(classroom_id, "id")
    found = await context.loaders.classrooms.load(key)
    if found is not None:
        await context.access.ensure_can_read_classroom(found.id)
    return found


async def classroom_students(
    info: Info, classroom: Classroom, first: int | None, after: str | None
) -> Page[Student]:
    context = info.context
    size = page_size(first, 50)
    keyset = decode_cursor(after, STUDENT_CURSOR, str)
    await context.access.ensure_can_read_classroom(classroom.id)
    page = await context.session_factory.reading(
        lambda session: directory.students_page(
            session,
            tenant_id=classroom.tenant_id,
            classroom_id=classroom.id,
            after=keyset,
            limit=size,
        )
    )
    return relay_page(page, lambda s: encode_cursor(STUDENT_CURSOR, s.name, s.id), keyset)


async def classrooms(info: Info, first: int | None, after: str | None) -> Page[Classroom]:
    """The viewer's classrooms: every one of the tenant for staff who see it whole (admins,
    partners), the ones a teacher teaches, a student's own."""
    context = info.context
    size = page_size(first, 50)
    keyset = decode_cursor(after, CLASSROOM_CURSOR, str)
    access = context.access
    among = None if access.sees_whole_tenant() else await access.own_classroom_ids()
    page = await context.session_factory.reading(
        lambda session: directory.classrooms_page(
            session, tenant_id=access.tenant_id, among=among, after=keyset, limit=size
        )
    )
    return relay_page(page, lambda c: encode_cursor(CLASSROOM_CURSOR, c.name, c.id), keyset)
