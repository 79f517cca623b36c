"""Attendance arithmetic: rates, standing, trend and ranks. Pure functions, no I/O.

Comparisons against thresholds use exact fractions so that a rate of exactly 75 % is MAHROOM
however the float would round.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

TREND_WINDOW_DAYS = 14
STABLE_BAND_POINTS = 2
WEEK_DAYS = 7


class Standing(StrEnum):
    OK = "OK"
    WARNING = "WARNING"
    TASDIQ = "TASDIQ"
    MAHROOM = "MAHROOM"


class Trend(StrEnum):
    IMPROVING = "IMPROVING"
    DECLINING = "DECLINING"
    STABLE = "STABLE"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Per-tenant limits in percent: MAHROOM at or below, WARNING below, TASDIQ below."""

    mahroom: Decimal = Decimal(75)
    warning: Decimal = Decimal(80)
    tasdiq: Decimal = Decimal(85)


@dataclass(frozen=True, slots=True)
class AttendanceCounts:
    """Records by status; ``counted`` is every record but NOT_MARKED."""

    counted: int = 0
    present: int = 0
    absent: int = 0
    sick: int = 0
    leave: int = 0


def _exact_rate(present: int, counted: int) -> Fraction:
    return Fraction(100) if counted == 0 else Fraction(present * 100, counted)


def attendance_rate(present: int, counted: int) -> float:
    """PRESENT ÷ counted × 100; a student with nothing counted yet has missed nothing: 100."""
    return 100.0 if counted == 0 else present * 100.0 / counted


def standing(counts: AttendanceCounts, thresholds: Thresholds) -> Standing:
    """The most severe standing whose rule holds."""
    rate = _exact_rate(counts.present, counts.counted)
    if rate <= Fraction(thresholds.mahroom):
        return Standing.MAHROOM
    if rate < Fraction(thresholds.warning):
        return Standing.WARNING
    if rate < Fraction(thresholds.tasdiq) and counts.sick + counts.leave > 0:
        return Standing.TASDIQ
    return Standing.OK


def trend(
    recent_present: int, recent_counted: int, previous_present: int, previous_counted: int
) -> Trend:
    """Recent window's rate against the previous one; within ±2 points (or no data) is STABLE."""
    if recent_counted == 0 or previous_counted == 0:
        return Trend.STABLE
    change = _exact_rate(recent_present, recent_counted) - _exact_rate(
        previous_present, previous_counted
    )
    if change > STABLE_BAND_POINTS:
        return Trend.IMPROVING
    if change < -STABLE_BAND_POINTS:
        return Trend.DECLINING
    return Trend.STABLE


def competition_ranks(rates: Sequence[float]) -> list[int]:
    """Standard competition ranks (1, 2, 2, 4) by descending rate, in the order given."""
    ordered = sorted(rates, reverse=True)
    first_position: dict[float, int] = {}
    for position, rate in enumerate(ordered, start=1):
        first_position.setdefault(rate, position)
    return [first_position[rate] for rate in rates]


def percentile(rank: int, total: int) -> float:
    """Share of classmates ranked below, in percent (PostgreSQL's percent_rank, inverted)."""
    if total <= 1:
        return 100.0
    return (total - rank) * 100.0 / (total - 1)


@dataclass(frozen=True, slots=True)
class WeekPoint:
    """One week (Monday to Sunday) of a student's history: its own counts and rate, and the
    cumulative count and rate over every record up to its Sunday."""

    week_start: date
    counted: int
    present: int
    attendance_rate: float
    cumulative_counted: int
    cumulative_rate: float

    @property
    def week_end(self) -> date:
        return self.week_start + timedelta(days=WEEK_DAYS - 1)


def week_start(day: date) -> date:
    """The Monday of ``day``'s week (ISO weeks)."""
    return day - timedelta(days=day.weekday())


def weekly_history(
    daily: Iterable[tuple[date, int, int]], *, today: date, weeks: int
) -> list[WeekPoint]:
    """The ``weeks`` weeks ending with ``today``'s, oldest first, from per-day (date, counted,
    present) figures. Days before the first week count toward the cumulative rate only; days
    after ``today`` (there should be none) are ignored."""
    first = week_start(today) - timedelta(days=WEEK_DAYS * (weeks - 1))
    total_counted = total_present = 0  # up to the week being built, earlier days included
    by_week: dict[date, tuple[int, int]] = {}
    for day, counted, present in daily:
        if day > today:
            continue
        if day < first:
            total_counted += counted
            total_present += present
            continue
        monday = week_start(day)
        week_counted, week_present = by_week.get(monday, (0, 0))
        by_week[monday] = (week_counted + counted, week_present + present)
    points = []
    for index in range(weeks):
        monday = first + timedelta(days=WEEK_DAYS * index)
        counted, present = by_week.get(monday, (0, 0))
        total_counted += counted
        total_present += present
        points.append(
            WeekPoint(
                week_start=monday,
                counted=counted,
                present=present,
                attendance_rate=attendance_rate(present, counted),
                cumulative_counted=total_counted,
                cumulative_rate=attendance_rate(total_present, total_counted),
            )
        )
    return points
