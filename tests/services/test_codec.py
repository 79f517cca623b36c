"""Cached values come back equal to what was stored."""

from __future__ import annotations

from datetime import UTC

from hypothesis import given
from hypothesis import strategies as st

from services.cached_reads import RankingPage
from services.dashboards import (
    AttendanceEntry,
    AttendanceHistory,
    DayAttendance,
    StudentDashboard,
    WeeklyAttendance,
)
from services.metrics import AttendanceCounts, WeekPoint
from services.platform.codec import decode, encode
from services.statistics import ClassStatistics, StudentRank

moments = st.datetimes(timezones=st.just(UTC))
rates = st.floats(0, 100)
counts = st.integers(0, 10**9)
attendance_counts = st.builds(AttendanceCounts, counts, counts, counts, counts, counts)
ranks = st.builds(
    StudentRank,
    rank=counts,
    total_students=counts,
    attendance_rate=rates,
    calculated_at=moments,
)
dashboards = st.builds(
    StudentDashboard,
    counts=attendance_counts,
    attendance_rate=rates,
    class_average=rates,
    ranking=ranks,
    last_updated=moments,
    statistics_calculated_at=moments,
)
entries = st.builds(
    AttendanceEntry, id=st.integers(1, 2**63 - 1), period=st.integers(1, 12), marked_at=moments
)
weeks = st.builds(
    WeeklyAttendance,
    days=st.lists(st.builds(DayAttendance, records=st.lists(entries, max_size=3)), max_size=7),
    counts=attendance_counts,
)
histories = st.builds(
    AttendanceHistory,
    points=st.lists(
        st.builds(
            WeekPoint,
            counted=counts,
            present=counts,
            attendance_rate=rates,
            cumulative_counted=counts,
            cumulative_rate=rates,
        ),
        max_size=12,
    ),
)
class_statistics = st.builds(
    ClassStatistics,
    total_students=counts,
    average_attendance=rates,
    median_attendance=rates,
    highest_attendance=rates,
    lowest_attendance=rates,
    students_at_risk=counts,
    last_calculated=moments,
)


@given(dashboards)
def test_dashboards_round_trip(dashboard):
    assert decode(StudentDashboard, encode(dashboard)) == dashboard


@given(weeks)
def test_weekly_attendance_round_trips(week):
    assert decode(WeeklyAttendance, encode(week)) == week


@given(histories)
def test_attendance_histories_round_trip(history):
    assert decode(AttendanceHistory, encode(history)) == history


@given(st.builds(RankingPage, ranks=st.lists(ranks, max_size=5), total=counts))
def test_ranking_pages_round_trip(page):
    assert decode(RankingPage, encode(page)) == page


@given(class_statistics)
def test_class_statistics_round_trip(found):
    assert decode(ClassStatistics, encode(found)) == found
