"""Student dashboards, class statistics and rankings."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graph.attributes import from_attributes
from graph.pagination import Connection
from graph.school import Student
from resolvers import dashboards as dashboard_resolvers
from resolvers.context import Info
from resolvers.loaders import load_existing
from services import dashboards, metrics, statistics

Standing = strawberry.enum(
    metrics.Standing,
    description="Most severe first: MAHROOM (barred), WARNING, TASDIQ (certificates due), OK.",
)
Trend = strawberry.enum(
    metrics.Trend, description="Last 14 days' rate against the 14 before; ±2 points is STABLE."
)


@strawberry.type(description="A student's place in their classroom, as of lastCalculated.")
class StudentRanking:
    student_id: strawberry.ID
    rank: int = strawberry.field(description="Competition rank by rate: 1, 2, 2, 4.")
    total_students: int
    percentile: float = strawberry.field(description="Share of classmates ranked below, in %.")
    attendance_rate: float
    last_calculated: datetime
    model: strawberry.Private[statistics.StudentRank]

    @classmethod
    def from_service(cls, rank: statistics.StudentRank) -> StudentRanking:
        return from_attributes(cls, rank, last_calculated=rank.calculated_at, model=rank)

    @strawberry.field
    async def student(self, info: Info) -> Student:
        loader = info.context.loaders.students
        return Student.from_model(await load_existing(loader, self.model.student_id, "student"))


@strawberry.type(
    description="A student's attendance. Counts are periods; rate = PRESENT ÷ marked × 100."
)
class StudentDashboard:
    student_id: strawberry.ID
    total_classes: int = strawberry.field(description="Periods marked other than NOT_MARKED.")
    present_days: int = strawberry.field(description="Periods marked PRESENT.")
    absent_days: int
    sick_days: int
    leave_days: int
    attendance_rate: float = strawberry.field(description="Live; 100 before any mark.")
    class_average: float = strawberry.field(description="As of statisticsCalculatedAt.")
    ranking: int = strawberry.field(description="Rank in class, as of statisticsCalculatedAt.")
    class_size: int
    percentile: float
    trend: Trend
    standing: Standing
    last_updated: datetime
    statistics_calculated_at: datetime = strawberry.field(
        description="When the class average and rank were last refreshed."
    )
    model: strawberry.Private[dashboards.StudentDashboard]

    @classmethod
    def from_service(cls, dashboard: dashboards.StudentDashboard) -> StudentDashboard:
        counts = dashboard.counts
        return from_attributes(
            cls,
            dashboard,
            total_classes=counts.counted,
            present_days=counts.present,
            absent_days=counts.absent,
            sick_days=counts.sick,
            leave_days=counts.leave,
            ranking=dashboard.ranking.rank,
            class_size=dashboard.ranking.total_students,
            percentile=dashboard.ranking.percentile,
            model=dashboard,
        )

    @strawberry.field
    async def student(self, info: Info) -> Student:
        loader = info.context.loaders.students
        return Student.from_model(await load_existing(loader, self.model.student_id, "student"))


@strawberry.type(description="A classroom's figures from the last statistics refresh.")
class ClassStatistics:
    classroom_id: strawberry.ID
    total_students: int
    average_attendance: float
    median_attendance: float
    highest_attendance: float
    lowest_attendance: float
    students_at_risk: int = strawberry.field(description="Students below the WARNING threshold.")
    last_calculated: datetime

    @classmethod
    def from_service(cls, stats: statistics.ClassStatistics) -> ClassStatistics:
        return from_attributes(cls, stats)


@strawberry.type
class DashboardQuery:
    @strawberry.field(description="A student's dashboard; the viewer's own when none is named.")
    async def student_dashboard(
        self, info: Info, student_id: strawberry.ID | None = None
    ) -> StudentDashboard:
        dashboard = await dashboard_resolvers.student_dashboard(info, student_id)
        return StudentDashboard.from_service(dashboard)

    @strawberry.field(description="Average, median, extremes and students at risk of a classroom.")
    async def class_statistics(self, info: Info, classroom_id: strawberry.ID) -> ClassStatistics:
        stats = await dashboard_resolvers.class_statistics(info, classroom_id)
        return ClassStatistics.from_service(stats)

    @strawberry.field(description="A student's rank; the viewer's own when none is named.")
    async def student_ranking(
        self, info: Info, student_id: strawberry.ID | None = None
    ) -> StudentRanking:
        rank = await dashboard_resolvers.student_ranking(info, student_id)
        return StudentRanking.from_service(rank)

    @strawberry.field(description="A classroom's students best first (staff only).")
    async def class_rankings(
        self,
        info: Info,
        classroom_id: strawberry.ID,
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[StudentRanking]:
        page = await dashboard_resolvers.class_rankings(info, classroom_id, first, after)
        return Connection.from_page(page, StudentRanking.from_service)
