"""Cached values come back equal to what was stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar, get_type_hints

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

T = TypeVar("T")

moments = st.datetimes(timezones=st.just(UTC))
rates = st.floats(0, 100)
counts = st.integers(0, 10**9)
# Every whole number a count, every float a rate (never NaN, which equals nothing), every
# datetime a moment; st.builds infers the other fields (ids, dates, enums) from their types.
BY_TYPE: dict[type, st.SearchStrategy[Any]] = {int: counts, float: rates, datetime: moments}


def values_of(cls: type[T], **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[T]:
    """Instances of the dataclass ``cls``, each field drawn by its type unless given."""
    typed = {name: BY_TYPE[hint] for name, hint in get_type_hints(cls).items() if hint in BY_TYPE}
    return st.builds(cls, **{**typed, **fields})


attendance_counts = values_of(AttendanceCounts)
ranks = values_of(StudentRank)
dashboards = values_of(StudentDashboard, counts=attendance_counts, ranking=ranks)
entries = st.builds(
    AttendanceEntry, id=st.integers(1, 2**63 - 1), period=st.integers(1, 12), marked_at=moments
)
weeks = st.builds(
    WeeklyAttendance,
    days=st.lists(st.builds(DayAttendance, records=st.lists(entries, max_size=3)), max_size=7),
    counts=attendance_counts,
)
histories = st.builds(AttendanceHistory, points=st.lists(values_of(WeekPoint), max_size=12))
class_statistics = values_of(ClassStatistics)


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
