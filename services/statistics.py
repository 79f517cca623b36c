"""Class statistics and rankings, read from materialized views refreshed in the background.

Each materialized view snapshots a live view of the same shape. A classroom or student missing
from the snapshot (created since the last refresh) is read from the live view instead, so
answers are never missing, only possibly behind by one refresh.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    Integer,
    Row,
    Select,
    String,
    TableClause,
    column,
    func,
    select,
    table,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.metrics import percentile
from services.platform.attributes import from_attributes
from services.platform.db import SessionFactory

# Serialises refreshes: two concurrent REFRESH … CONCURRENTLY of one view would queue anyway.
REFRESH_LOCK_KEY = 0x526F6C6C  # "Roll"


def _student_stats(name: str) -> TableClause:
    return table(
        name,
        column("tenant_id", UUID(as_uuid=True)),
        column("classroom_id", UUID(as_uuid=True)),
        column("student_id", UUID(as_uuid=True)),
        column("counted", BigInteger),
        column("present", BigInteger),
        column("attendance_rate", Float),
        column("rank", BigInteger),
        column("class_size", BigInteger),
    )


def _class_stats(name: str) -> TableClause:
    return table(
        name,
        column("tenant_id", UUID(as_uuid=True)),
        column("classroom_id", UUID(as_uuid=True)),
        column("classroom_name", String),
        column("total_students", BigInteger),
        column("average_attendance", Float),
        column("median_attendance", Float),
        column("highest_attendance", Float),
        column("lowest_attendance", Float),
        column("students_at_risk", Integer),
        column("last_calculated", DateTime(timezone=True)),
    )


STUDENT_STATS = _student_stats("student_attendance_stats")
STUDENT_STATS_LIVE = _student_stats("student_attendance_stats_live")
CLASS_STATS = _class_stats("class_statistics")
CLASS_STATS_LIVE = _class_stats("class_statistics_live")


@dataclass(frozen=True, slots=True)
class ClassStatistics:
    classroom_id: uuid.UUID
    total_students: int
    average_attendance: float
    median_attendance: float
    highest_attendance: float
    lowest_attendance: float
    students_at_risk: int
    last_calculated: datetime


@dataclass(frozen=True, slots=True)
class StudentRank:
    student_id: uuid.UUID
    classroom_id: uuid.UUID
    rank: int
    total_students: int
    attendance_rate: float
    calculated_at: datetime

    @property
    def percentile(self) -> float:
        return percentile(self.rank, self.total_students)


async def class_statistics(
    session: AsyncSession, *, tenant_id: uuid.UUID, classroom_id: uuid.UUID
) -> ClassStatistics | None:
    """The classroom's figures from the last refresh (live when it has none); None if unknown."""
    for view in (CLASS_STATS, CLASS_STATS_LIVE):
        row = (
            await session.execute(
                select(view).where(
                    view.c.tenant_id == tenant_id, view.c.classroom_id == classroom_id
                )
            )
        ).first()
        if row is not None:
            return from_attributes(ClassStatistics, row)
    return None


def _rank(row: Row[Any]) -> StudentRank:
    return StudentRank(
        student_id=row.student_id,
        classroom_id=row.classroom_id,
        rank=row.rank,
        total_students=row.class_size,
        attendance_rate=row.attendance_rate,
        calculated_at=row.calculated_at,
    )


def _ranks(snapshot: bool) -> tuple[TableClause, Select[Any]]:
    """Rank rows with the time they were computed: the snapshot's refresh time, or now."""
    if snapshot:
        view = STUDENT_STATS
        query = select(view, CLASS_STATS.c.last_calculated.label("calculated_at")).join(
            CLASS_STATS, CLASS_STATS.c.classroom_id == view.c.classroom_id
        )
    else:
        view = STUDENT_STATS_LIVE
        query = select(view, func.now().label("calculated_at"))
    return view, query


async def student_rank(
    session: AsyncSession, *, tenant_id: uuid.UUID, student_id: uuid.UUID, classroom_id: uuid.UUID
) -> StudentRank:
    """The student's place in their classroom as of the last refresh (live when not in it)."""
    for snapshot in (True, False):
        view, query = _ranks(snapshot)
        row = (
            await session.execute(
                query.where(
                    view.c.tenant_id == tenant_id,
                    view.c.classroom_id == classroom_id,
                    view.c.student_id == student_id,
                )
            )
        ).first()
        if row is not None:
            return _rank(row)
    raise LookupError(f"student {student_id} is not in classroom {classroom_id}")


@dataclass(frozen=True, slots=True)
class StandingInClass:
    """What a dashboard shows of a student's class, and when the oldest of it was computed."""

    class_average: float
    rank: StudentRank
    calculated_at: datetime


async def standing_in_class(
    session: AsyncSession, *, tenant_id: uuid.UUID, student_id: uuid.UUID, classroom_id: uuid.UUID
) -> StandingInClass:
    """The classroom's average and the student's rank in it, from one snapshot in one
    statement; from the live views for whichever is not in the snapshot yet."""
    row = (
        await session.execute(
            select(
                STUDENT_STATS,
                CLASS_STATS.c.last_calculated.label("calculated_at"),
                CLASS_STATS.c.average_attendance,
            )
            .join(CLASS_STATS, CLASS_STATS.c.classroom_id == STUDENT_STATS.c.classroom_id)
            .where(
                STUDENT_STATS.c.tenant_id == tenant_id,
                STUDENT_STATS.c.classroom_id == classroom_id,
                STUDENT_STATS.c.student_id == student_id,
            )
        )
    ).first()
    if row is not None:
        return StandingInClass(row.average_attendance, _rank(row), row.calculated_at)
    statistics = await class_statistics(session, tenant_id=tenant_id, classroom_id=classroom_id)
    assert statistics is not None, "a student's classroom always has statistics"
    rank = await student_rank(
        session, tenant_id=tenant_id, student_id=student_id, classroom_id=classroom_id
    )
    return StandingInClass(
        statistics.average_attendance, rank, min(statistics.last_calculated, rank.calculated_at)
    )


async def rankings_page(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    classroom_id: uuid.UUID,
    after: tuple[int, uuid.UUID] | None,
    limit: int,
) -> list[StudentRank]:
    """A classroom's ranks best first, keyset-paginated on (rank, student id)."""
    for snapshot in (True, False):
        view, query = _ranks(snapshot)
        query = (
            query.where(view.c.tenant_id == tenant_id, view.c.classroom_id == classroom_id)
            .order_by(view.c.rank, view.c.student_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(tuple_(view.c.rank, view.c.student_id) > tuple_(*after))
        rows = (await session.execute(query)).all()
        if rows or after is not None:
            return [_rank(row) for row in rows]
    return []


async def refresh_statistics(*, session_factory: SessionFactory) -> None:
    """Re-snapshot both views without blocking readers (student figures first)."""
    async with session_factory() as session, session.begin():
        await session.execute(select(text(f"pg_advisory_xact_lock({REFRESH_LOCK_KEY})")))
        await session.execute(
            text("REFRESH MATERIALIZED VIEW CONCURRENTLY student_attendance_stats")
        )
        await session.execute(text("REFRESH MATERIALIZED VIEW CONCURRENTLY class_statistics"))
