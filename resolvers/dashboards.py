"""Dashboards, weekly attendance, class statistics and rankings."""

from __future__ import annotations

import uuid
from datetime import date

from resolvers.context import Info, parse_id
from resolvers.pagination import Page, decode_cursor, encode_cursor, page_size
from services import dashboards, statistics
from services.errors import Invalid, NotFound
from services.models import Classroom
from services.tenants import tenant_thresholds, tenant_today

RANKING_CURSOR = "rank"


def student_or_own(info: Info, student_id: str | None) -> uuid.UUID:
    """The named student, or the viewer's own record when none is named."""
    if student_id is not None:
        return parse_id(student_id, "studentId")
    own = info.context.viewer.student_id
    if own is None:
        raise Invalid("studentId", "studentId is required: your account has no student record.")
    return own


async def student_dashboard(info: Info, student_id: str | None) -> dashboards.StudentDashboard:
    context = info.context
    target = student_or_own(info, student_id)
    tenant = await context.tenant()
    now = context.now()
    async with context.session_factory() as session:
        return await dashboards.student_dashboard(
            session,
            access=context.access,
            student_id=target,
            thresholds=tenant_thresholds(tenant),
            today=tenant_today(tenant, now),
            now=now,
        )


async def weekly_attendance(
    info: Info, student_id: str | None, week_start: date
) -> dashboards.WeeklyAttendance:
    context = info.context
    target = student_or_own(info, student_id)
    async with context.session_factory() as session:
        return await dashboards.weekly_attendance(
            session, access=context.access, student_id=target, week_start=week_start
        )


async def student_ranking(info: Info, student_id: str | None) -> statistics.StudentRank:
    context = info.context
    target = student_or_own(info, student_id)
    async with context.session_factory() as session:
        student = await dashboards.readable_student(
            session, access=context.access, student_id=target
        )
        return await statistics.student_rank(
            session,
            tenant_id=student.tenant_id,
            student_id=student.id,
            classroom_id=student.classroom_id,
        )


async def readable_classroom(info: Info, classroom_id: str) -> Classroom:
    """The classroom, if it is in the viewer's tenant and the viewer may read it."""
    context = info.context
    key = parse_id(classroom_id, "classroomId")
    access = context.access
    classroom = await context.loaders.classrooms.load(key)
    if classroom is None:
        raise NotFound("No such classroom.")
    await access.ensure_can_read_classroom(classroom.id)
    return classroom


async def class_statistics(info: Info, classroom_id: str) -> statistics.ClassStatistics:
    context = info.context
    classroom = await readable_classroom(info, classroom_id)
    async with context.session_factory() as session:
        found = await statistics.class_statistics(
            session, tenant_id=classroom.tenant_id, classroom_id=classroom.id
        )
    if found is None:
        raise NotFound("No such classroom.")
    return found


async def class_rankings(
    info: Info, classroom_id: str, first: int | None, after: str | None
) -> Page[statistics.StudentRank]:
    context = info.context
    size = page_size(first, 50)
    keyset = decode_cursor(after, RANKING_CURSOR, int)
    classroom = await readable_classroom(info, classroom_id)
    await context.access.ensure_can_read_rankings(classroom.id)
    async with context.session_factory() as session:
        ranks = await statistics.rankings_page(
            session,
            tenant_id=classroom.tenant_id,
            classroom_id=classroom.id,
            after=keyset,
            limit=size + 1,
        )
        if ranks:
            total = ranks[0].total_students
        else:
            found = await statistics.class_statistics(
                session, tenant_id=classroom.tenant_id, classroom_id=classroom.id
            )
            total = found.total_students if found else 0
    return Page(
        items=[
            (encode_cursor(RANKING_CURSOR, rank.rank, rank.student_id), rank)
            for rank in ranks[:size]
        ],
        has_next_page=len(ranks) > size,
        has_previous_page=keyset is not None,
        total_count=total,
    )
