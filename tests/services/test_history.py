"""The weekly history behind the dashboard page's chart: pure arithmetic, then the query."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.dashboards import attendance_history
from services.metrics import attendance_rate, week_start, weekly_history
from services.models import AttendanceStatus
from services.platform.errors import Invalid

WEDNESDAY = date(2026, 3, 11)


def test_weeks_start_on_monday():
    assert week_start(date(2026, 3, 9)) == date(2026, 3, 9)
    assert week_start(WEDNESDAY) == date(2026, 3, 9)
    assert week_start(date(2026, 3, 15)) == date(2026, 3, 9)


def test_each_week_has_its_own_rate_and_the_rate_so_far():
    # given two weeks with marks and a day before the window
    daily = [
        (date(2026, 2, 20), 6, 0),  # before the window: only in the cumulative rate
        (date(2026, 3, 2), 6, 6),
        (date(2026, 3, 3), 6, 3),
        (date(2026, 3, 10), 6, 6),
    ]
    # when
    points = weekly_history(daily, today=WEDNESDAY, weeks=3)
    # then
    assert [p.week_start for p in points] == [
        date(2026, 2, 23),
        date(2026, 3, 2),
        WEDNESDAY - timedelta(days=2),
    ]
    assert [(p.counted, p.present) for p in points] == [(0, 0), (12, 9), (6, 6)]
    assert [p.attendance_rate for p in points] == [100.0, 75.0, 100.0]
    assert [p.cumulative_counted for p in points] == [6, 18, 24]
    assert [p.cumulative_rate for p in points] == [0.0, 9 * 100 / 18, 15 * 100 / 24]


def test_days_after_today_are_ignored():
    points = weekly_history([(WEDNESDAY + timedelta(days=1), 6, 0)], today=WEDNESDAY, weeks=1)
    assert (points[0].counted, points[0].cumulative_rate) == (0, 100.0)


days = st.lists(
    st.tuples(st.dates(date(2025, 9, 1), WEDNESDAY), st.integers(0, 6), st.integers(0, 6)).map(
        lambda t: (t[0], max(t[1], t[2]), min(t[1], t[2]))
    ),
    unique_by=lambda t: t[0],
    max_size=60,
)


@given(daily=days, weeks=st.integers(1, 52))
def test_the_last_cumulative_rate_is_the_overall_rate(daily, weeks):
    points = weekly_history(daily, today=WEDNESDAY, weeks=weeks)
    assert len(points) == weeks
    assert points[-1].week_start == week_start(WEDNESDAY)
    assert all(
        b.week_start - a.week_start == timedelta(days=7) for a, b in itertools.pairwise(points)
    )
    counted = sum(c for _, c, _ in daily)
    present = sum(p for _, _, p in daily)
    assert points[-1].cumulative_rate == attendance_rate(present, counted)
    assert points[-1].cumulative_counted == counted
    first = points[0].week_start
    assert sum(p.counted for p in points) == sum(c for d, c, _ in daily if d >= first)


async def test_the_query_counts_only_marked_periods(factory, session_factory):
    # given a week of marks, one of them NOT_MARKED, and another student's
    school = await factory.school(students=2)
    student, other = school.students
    monday = week_start(WEDNESDAY)
    await factory.records(
        school,
        student,
        [
            (monday, 1, AttendanceStatus.PRESENT),
            (monday, 2, AttendanceStatus.ABSENT),
            (monday, 3, AttendanceStatus.NOT_MARKED),
            (monday - timedelta(days=7), 1, AttendanceStatus.SICK),
        ],
    )
    await factory.records(school, other, [(monday, 1, AttendanceStatus.ABSENT)])
    # when
    async with session_factory() as session:
        history = await attendance_history(
            session, tenant_id=school.tenant.id, student_id=student.id, today=WEDNESDAY, weeks=2
        )
    # then
    assert (history.student_id, history.classroom_id) == (student.id, student.classroom_id)
    assert [(p.counted, p.present) for p in history.points] == [(1, 0), (2, 1)]
    assert history.points[-1].cumulative_rate == 100 / 3


@pytest.mark.parametrize("weeks", [0, 53])
async def test_weeks_out_of_range_name_the_argument(factory, session_factory, weeks):
    async with session_factory() as session:
        with pytest.raises(Invalid) as refused:
            await attendance_history(
                session,
                tenant_id=uuid.uuid4(),
                student_id=uuid.uuid4(),
                today=WEDNESDAY,
                weeks=weeks,
            )
    assert refused.value.field == "weeks"
