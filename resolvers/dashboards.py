"""Dashboards, weekly attendance, class statistics and rankings."""

from __future__ import annotations

import uuid
from datetime import date

from resolvers.context import Info, parse_id
from resolvers.pagination import Page, decode_cursor, encode_cursor, page_size
from services import dashboards, statistics
from services.platform.errors import Invalid
from services.platform.resources import Busy

RANKING_CURSOR = "rank"
# Every read here counts against the viewer's dashboard limit, each alias and batched
# operation on its own.
DASHBOARD_LIMIT = "dashboard"


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
    await context.limit(DASHBOARD_LIMIT)
    found = await context.reads.student_dashboard(student_or_own(info, student_id))
    dashboard = found.value
    context.freshness.note_statistics(found, dashboard.statistics_calculated_at, context.now())
    return dashboard


async def weekly_attendance(
    info: Info, student_id: str | None, week_start: date
) -> dashboards.WeeklyAttendance:
    context = info.context
    await context.limit(DASHBOARD_LIMIT)
    found = await context.reads.weekly_attendance(student_or_own(info, student_id), week_start)
    context.freshness.note(found)
    return found.value


async def attendance_history(
    info: Info, student_id: str | None, weeks: int
) -> dashboards.AttendanceHistory:
    context = info.context
    dashboards.check_history_weeks(weeks)  # before the read counts against the limit
    await context.limit(DASHBOARD_LIMIT)
    found = await context.reads.attendance_history(student_or_own(info, student_id), weeks)
    context.freshness.note(found)
    return found.value


async def student_ranking(info: Info, student_id: str | None) -> statistics.StudentRank:
    context = info.context
    await context.limit(DASHBOARD_LIMIT)
    found = await context.reads.student_ranking(student_or_own(info, student_id))
    context.freshness.note_statistics(found, found.value.calculated_at, context.now())
    return found.value


async def class_statistics(info: Info, classroom_id: str) -> statistics.ClassStatistics:
    context = info.context
    await context.limit(DASHBOARD_LIMIT)
    found = await context.reads.class_statistics(parse_id(classroom_id, "classroomId"))
    context.freshness.note_statistics(found, found.value.last_calculated, context.now())
    return found.value


async def class_rankings(
    info: Info, classroom_id: str, first: int | None, after: str | None
) -> Page[statistics.StudentRank]:
    context = info.context
    size = page_size(first, 50)
    keyset = decode_cursor(after, RANKING_CURSOR, int)
    if keyset is not None and context.resources.constrained:
        # Deeper pages are browsing, not the dashboard's answer: they wait out the pressure
        # (before the rate limit counts them).
        raise Busy(
            "The server is busy: rankings beyond the first page are paused. Try again shortly."
        )
    await context.limit(DASHBOARD_LIMIT)
    found = await context.reads.class_rankings(
        parse_id(classroom_id, "classroomId"), after=keyset, limit=size + 1
    )
    ranks = found.value.ranks
    if ranks:
        context.freshness.note_statistics(found, ranks[0].calculated_at, context.now())
    else:
        context.freshness.note(found)
    return Page(
        items=[
            (encode_cursor(RANKING_CURSOR, rank.rank, rank.student_id), rank)
            for rank in ranks[:size]
        ],
        has_next_page=len(ranks) > size,
        has_previous_page=keyset is not None,
        total_count=found.value.total,
    )
