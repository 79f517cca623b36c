"""Dashboards, weekly attendance, statistics and rankings read through the cache.

What each entry depends on (its tags), and what invalidates them:

| entry              | key                          | tags                       | soft TTL |
| ------------------ | ---------------------------- | -------------------------- | -------- |
| dashboard          | student                      | student, statistics        | 120 s    |
| weekly             | student, week start          | student                    | 300 s    |
| history            | student, weeks, today        | student                    | 300 s    |
| student_ranking    | student                      | student, statistics        | 300 s    |
| class_statistics   | classroom                    | classroom, statistics      | 300 s    |
| class_rankings     | classroom, cursor, page size | classroom, statistics      | 300 s    |

A mark invalidates its students and classroom at once: the student's own figures are right on
the very next read. Class aggregates (class average, rank, statistics, rankings) come from the
materialized views, so they change when a refresh lands; the refresh then invalidates its
tenants' ``statistics`` tag. Until it does, the ``statistics:pending`` marker a mark leaves
makes responses say the aggregates are stale.

One computation serves every viewer (single flight), so computations check no rights: the
viewer's are checked before (what needs no data: a student reads only themself) and after,
against the value's own student and classroom, on hits and misses alike.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import NoReturn, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from services import dashboards, statistics
from services.access import Access
from services.directory import existing, rows_by_ids
from services.models import Classroom, Student, Tenant
from services.platform.cache import Cache, Lookup, ServerIdentity, Spec
from services.platform.circuit import CircuitBreaker
from services.platform.db import SessionFactory
from services.platform.errors import Forbidden, NotFound
from services.platform.redis_urls import redis_client
from services.platform.settings import Settings
from services.platform.telemetry import TimedRedis
from services.queue import replay_invalidations
from services.tenants import tenant_thresholds, tenant_today


class AboutStudent(Protocol):
    @property
    def student_id(self) -> uuid.UUID: ...
    @property
    def classroom_id(self) -> uuid.UUID: ...


T = TypeVar("T")
S = TypeVar("S", bound=AboutStudent)
logger = logging.getLogger(__name__)
REDIS_TIMEOUT_SECONDS = 0.5
STATISTICS_TAG = "statistics"
STATISTICS_PENDING = "statistics:pending"
# The refresh cron runs every 10 minutes; a snapshot older than that and a grace is overdue.
STATISTICS_REFRESH_INTERVAL = timedelta(minutes=10)
STATISTICS_OVERDUE_AFTER = STATISTICS_REFRESH_INTERVAL + timedelta(minutes=2)


class Kind(StrEnum):
    """The cached reads; their TTLs are ``Settings.cache_ttls`` (same names)."""

    DASHBOARD = "dashboard"
    WEEKLY = "weekly"
    HISTORY = "history"
    STUDENT_RANKING = "student_ranking"
    CLASS_STATISTICS = "class_statistics"
    CLASS_RANKINGS = "class_rankings"


def student_tag(student_id: uuid.UUID) -> str:
    return f"student:{student_id}"


def classroom_tag(classroom_id: uuid.UUID) -> str:
    return f"classroom:{classroom_id}"


@dataclass(frozen=True, slots=True)
class RankingPage:
    ranks: list[statistics.StudentRank]
    total: int


@dataclass(frozen=True, slots=True)
class StatisticsFreshness:
    """How current the class aggregates in a response are."""

    calculated_at: datetime
    age_seconds: float
    stale: bool
    reason: str | None


def statistics_freshness(
    calculated_at: datetime, pending_marker: str | None, now: datetime
) -> StatisticsFreshness:
    """Stale while marks wait for the next refresh, or when the refresh schedule slipped."""
    age = now - calculated_at
    if pending_marker is not None:
        reason: str | None = "marks-pending"
    elif age > STATISTICS_OVERDUE_AFTER:
        reason = "refresh-overdue"
    else:
        reason = None
    return StatisticsFreshness(
        calculated_at=calculated_at,
        age_seconds=max(age.total_seconds(), 0.0),
        stale=reason is not None,
        reason=reason,
    )


@dataclass(frozen=True, slots=True)
class Reader:
    """The cached reads for one request: the cache, the database and the viewer's rights."""

    cache: Cache
    session_factory: SessionFactory
    access: Access
    tenant: Callable[[], Awaitable[Tenant]]
    clock: Callable[[], datetime]

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.access.tenant_id

    async def _fetch(
        self,
        *,
        kind: Kind,
        key: str,
        tags: tuple[str, ...],
        value_type: type[T],
        compute: Callable[[], Awaitable[T]],
        aggregates: bool = False,
    ) -> Lookup[T]:
        """``aggregates``: the value holds class aggregates, from the statistics snapshot."""
        return await self.cache.fetch(
            Spec(
                tenant_id=self.tenant_id,
                kind=kind,
                key=key,
                tags=(*tags, STATISTICS_TAG) if aggregates else tags,
                value_type=value_type,
                compute=compute,
                watch=(STATISTICS_PENDING,) if aggregates else (),
            )
        )

    async def _student_read(
        self,
        student_id: uuid.UUID,
        *,
        kind: Kind,
        key: str,
        value_type: type[S],
        compute: Callable[[], Awaitable[S]],
        aggregates: bool = False,
    ) -> Lookup[S]:
        """A read about one student: the rights needing no data first, the rest against the
        value's own student and classroom (on hits as on misses)."""
        try:
            self.access.ensure_student_reads_own(student_id)
        except Forbidden as refused:
            await self._refuse(refused, Student, student_id)
        found = await self._fetch(
            kind=kind,
            key=key,
            tags=(student_tag(student_id),),
            value_type=value_type,
            compute=compute,
            aggregates=aggregates,
        )
        await self.access.ensure_can_read_student(
            student_id=found.value.student_id, classroom_id=found.value.classroom_id
        )
        return found

    async def _classroom_read(
        self,
        classroom_id: uuid.UUID,
        *,
        ensure: Callable[[uuid.UUID], Awaitable[None]],
        kind: Kind,
        key: str,
        value_type: type[T],
        read: Callable[[AsyncSession], Awaitable[T]],
    ) -> Lookup[T]:
        """A read of a classroom's aggregates, once ``ensure`` allows the viewer."""
        try:
            await ensure(classroom_id)
        except Forbidden as refused:
            await self._refuse(refused, Classroom, classroom_id)

        async def compute() -> T:
            return await self.session_factory.reading(read)

        return await self._fetch(
            kind=kind,
            key=key,
            tags=(classroom_tag(classroom_id),),
            value_type=value_type,
            compute=compute,
            aggregates=True,
        )

    async def _refuse(
        self, refused: Forbidden, model: type[Student | Classroom], key: uuid.UUID
    ) -> NoReturn:
        """NOT_FOUND for ids unknown in this tenant (as a full read would say), else FORBIDDEN."""
        (row,) = await self.session_factory.reading(
            lambda session: rows_by_ids(session, model, self.tenant_id, [key])
        )
        if row is None:
            raise NotFound(f"No such {model.__name__.lower()}.") from None
        raise refused

    async def student_dashboard(self, student_id: uuid.UUID) -> Lookup[dashboards.StudentDashboard]:
        async def compute() -> dashboards.StudentDashboard:
            tenant = await self.tenant()
            now = self.clock()
            return await self.session_factory.reading(
                lambda session: dashboards.student_dashboard(
                    session,
                    tenant_id=self.tenant_id,
                    student_id=student_id,
                    thresholds=tenant_thresholds(tenant),
                    today=tenant_today(tenant, now),
                    now=now,
                )
            )

        return await self._student_read(
            student_id,
            kind=Kind.DASHBOARD,
            key=str(student_id),
            value_type=dashboards.StudentDashboard,
            compute=compute,
            aggregates=True,
        )

    async def weekly_attendance(
        self, student_id: uuid.UUID, week_start: date
    ) -> Lookup[dashboards.WeeklyAttendance]:
        async def compute() -> dashboards.WeeklyAttendance:
            return await self.session_factory.reading(
                lambda session: dashboards.weekly_attendance(
                    session, tenant_id=self.tenant_id, student_id=student_id, week_start=week_start
                )
            )

        return await self._student_read(
            student_id,
            kind=Kind.WEEKLY,
            key=f"{student_id}:{week_start.isoformat()}",
            value_type=dashboards.WeeklyAttendance,
            compute=compute,
        )

    async def attendance_history(
        self, student_id: uuid.UUID, weeks: int
    ) -> Lookup[dashboards.AttendanceHistory]:
        today = tenant_today(await self.tenant(), self.clock())

        async def compute() -> dashboards.AttendanceHistory:
            return await self.session_factory.reading(
                lambda session: dashboards.attendance_history(
                    session,
                    tenant_id=self.tenant_id,
                    student_id=student_id,
                    today=today,
                    weeks=weeks,
                )
            )

        return await self._student_read(
            student_id,
            kind=Kind.HISTORY,
            # The window moves with the school's date, so the date is part of the key.
            key=f"{student_id}:{weeks}:{today.isoformat()}",
            value_type=dashboards.AttendanceHistory,
            compute=compute,
        )

    async def student_ranking(self, student_id: uuid.UUID) -> Lookup[statistics.StudentRank]:
        async def read(session: AsyncSession) -> statistics.StudentRank:
            student = await existing(session, Student, self.tenant_id, student_id)
            return await statistics.student_rank(
                session,
                tenant_id=student.tenant_id,
                student_id=student.id,
                classroom_id=student.classroom_id,
            )

        async def compute() -> statistics.StudentRank:
            return await self.session_factory.reading(read)

        return await self._student_read(
            student_id,
            kind=Kind.STUDENT_RANKING,
            key=str(student_id),
            value_type=statistics.StudentRank,
            compute=compute,
            aggregates=True,
        )

    async def class_statistics(self, classroom_id: uuid.UUID) -> Lookup[statistics.ClassStatistics]:
        async def read(session: AsyncSession) -> statistics.ClassStatistics:
            return await existing_class_statistics(
                session, tenant_id=self.tenant_id, classroom_id=classroom_id
            )

        return await self._classroom_read(
            classroom_id,
            ensure=self.access.ensure_can_read_classroom,
            kind=Kind.CLASS_STATISTICS,
            key=str(classroom_id),
            value_type=statistics.ClassStatistics,
            read=read,
        )

    async def class_rankings(
        self, classroom_id: uuid.UUID, *, after: tuple[int, uuid.UUID] | None, limit: int
    ) -> Lookup[RankingPage]:
        async def read(session: AsyncSession) -> RankingPage:
            ranks = await statistics.rankings_page(
                session,
                tenant_id=self.tenant_id,
                classroom_id=classroom_id,
                after=after,
                limit=limit,
            )
            if ranks:
                return RankingPage(ranks=ranks, total=ranks[0].total_students)
            found = await existing_class_statistics(
                session, tenant_id=self.tenant_id, classroom_id=classroom_id
            )
            return RankingPage(ranks=[], total=found.total_students)

        cursor = "first" if after is None else f"{after[0]}:{after[1]}"
        return await self._classroom_read(
            classroom_id,
            ensure=self.access.ensure_can_read_rankings,
            kind=Kind.CLASS_RANKINGS,
            key=f"{classroom_id}:{cursor}:{limit}",
            value_type=RankingPage,
            read=read,
        )


async def existing_class_statistics(
    session: AsyncSession, *, tenant_id: uuid.UUID, classroom_id: uuid.UUID
) -> statistics.ClassStatistics:
    found = await statistics.class_statistics(
        session, tenant_id=tenant_id, classroom_id=classroom_id
    )
    if found is None:
        raise NotFound("No such classroom.")
    return found


def create_cache(
    settings: Settings,
    *,
    session_factory: SessionFactory,
    constrained: Callable[[], bool] = lambda: False,
) -> Cache:
    """The process's cache on ``cache_redis_url`` (else the queue's Redis), with short socket
    timeouts so that a hung Redis costs a read half a second, not a request. Stale entries are
    not refreshed in the background while ``constrained()``."""
    url = settings.live_redis_url
    if url is None:
        raise ValueError("the cache needs a Redis URL")
    server = ServerIdentity()
    redis = redis_client(
        url,
        redis_class=TimedRedis,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        redis_connect_func=server.connected,
    )

    async def replay() -> None:
        await replay_invalidations(session_factory=session_factory, apply=apply)

    async def apply(tenant_id: uuid.UUID, tags: list[str]) -> None:
        await cache.apply_invalidation(tenant_id=tenant_id, tags=tags, touch=(STATISTICS_PENDING,))

    cache = Cache(
        redis=redis,
        ttls=settings.cache_ttls,
        l1_size=settings.cache_l1_size,
        breaker=CircuitBreaker(reset_seconds=settings.cache_breaker_reset_seconds),
        server=server,
        # A Redis gone back in time may have lost the marker a mark left, and class
        # aggregates would say they are fresh: a replaced epoch assumes marks are pending.
        epoch_markers=(STATISTICS_PENDING,),
        on_reconnect=replay,
        constrained=constrained,
    )
    return cache


def mark_tags(classroom_id: uuid.UUID, student_ids: Sequence[uuid.UUID]) -> list[str]:
    """What a mark in ``classroom_id`` for ``student_ids`` makes out of date."""
    return [*(student_tag(key) for key in student_ids), classroom_tag(classroom_id)]


async def invalidate_marks(cache: Cache, *, tenant_id: uuid.UUID, tags: Sequence[str]) -> None:
    """Invalidate a mark's tags and note that the statistics snapshot lacks it."""
    await cache.invalidate(tenant_id=tenant_id, tags=tags, touch=(STATISTICS_PENDING,))
