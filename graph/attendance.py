"""Attendance records, the weekly view, and marking the register."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from graph.attributes import from_attributes
from graph.school import Student, Subject
from resolvers import attendance as attendance_resolvers
from resolvers import dashboards as dashboard_resolvers
from resolvers.context import Info
from resolvers.loaders import load_existing
from services import dashboards, metrics, models

AttendanceStatus = strawberry.enum(
    models.AttendanceStatus, description="A student's status for one period."
)


@strawberry.type(description="One mark: a student's status for one period of one day.")
class AttendanceRecord:
    id: strawberry.ID
    student_id: strawberry.ID
    classroom_id: strawberry.ID
    date: date
    period: int
    status: AttendanceStatus
    marked_by: strawberry.ID = strawberry.field(description="The user who marked it.")
    marked_at: datetime
    model: strawberry.Private[dashboards.AttendanceEntry]

    @classmethod
    def from_service(cls, record: dashboards.AttendanceEntry) -> AttendanceRecord:
        return from_attributes(cls, record, model=record)

    @strawberry.field
    async def subject(self, info: Info) -> Subject:
        loader = info.context.loaders.subjects
        return Subject.from_model(await load_existing(loader, self.model.subject_id, "subject"))

    @strawberry.field
    async def student(self, info: Info) -> Student:
        loader = info.context.loaders.students
        return Student.from_model(await load_existing(loader, self.model.student_id, "student"))


@strawberry.type
class AttendanceDay:
    date: date
    records: list[AttendanceRecord] = strawberry.field(description="By period.")


@strawberry.type
class WeeklyAttendance:
    student_id: strawberry.ID
    week_start: date
    week_end: date
    days: list[AttendanceDay] = strawberry.field(description="Seven days from weekStart.")
    total_classes: int = strawberry.field(description="Periods marked other than NOT_MARKED.")
    present_count: int
    absent_count: int
    sick_count: int
    leave_count: int
    attendance_rate: float

    @classmethod
    def from_service(cls, week: dashboards.WeeklyAttendance) -> WeeklyAttendance:
        return from_attributes(
            cls,
            week,
            week_end=week.days[-1].date,
            days=[
                AttendanceDay(
                    date=day.date, records=[AttendanceRecord.from_service(r) for r in day.records]
                )
                for day in week.days
            ],
            total_classes=week.counts.counted,
            present_count=week.counts.present,
            absent_count=week.counts.absent,
            sick_count=week.counts.sick,
            leave_count=week.counts.leave,
        )


@strawberry.type(description="One week of a student's attendance, Monday to Sunday.")
class AttendancePoint:
    week_start: date
    week_end: date
    total_classes: int = strawberry.field(description="Periods marked in the week.")
    present_count: int
    attendance_rate: float = strawberry.field(
        description="The week's own rate; 100 for a week without marks (see totalClasses)."
    )
    cumulative_classes: int = strawberry.field(
        description="Periods marked up to the week's end, earlier weeks included."
    )
    cumulative_rate: float = strawberry.field(
        description="The rate over every record up to the week's end: the dashboard's rate "
        "for the current week."
    )

    @classmethod
    def from_service(cls, point: metrics.WeekPoint) -> AttendancePoint:
        return from_attributes(
            cls,
            point,
            total_classes=point.counted,
            present_count=point.present,
            cumulative_classes=point.cumulative_counted,
        )


@strawberry.input
class AttendanceMark:
    student_id: strawberry.ID
    status: AttendanceStatus


@strawberry.input
class MarkAttendanceInput:
    classroom_id: strawberry.ID
    date: date
    period: int = strawberry.field(description="From 1 to the tenant's periods per day.")
    subject_id: strawberry.ID
    marks: list[AttendanceMark] = strawberry.field(
        description="One per student; a student may appear once. Replaces earlier marks."
    )


@strawberry.type
class MarkAttendancePayload:
    records: list[AttendanceRecord]


@strawberry.type
class AttendanceQuery:
    @strawberry.field(description="Seven days of a student's records from weekStart.")
    async def weekly_attendance(
        self, info: Info, week_start: date, student_id: strawberry.ID | None = None
    ) -> WeeklyAttendance:
        week = await dashboard_resolvers.weekly_attendance(info, student_id, week_start)
        return WeeklyAttendance.from_service(week)

    @strawberry.field(
        description="A student's rate week by week, oldest first, ending with the school's "
        "current week (1 to 52 weeks)."
    )
    async def attendance_history(
        self, info: Info, student_id: strawberry.ID | None = None, weeks: int = 12
    ) -> list[AttendancePoint]:
        history = await dashboard_resolvers.attendance_history(info, student_id, weeks)
        return [AttendancePoint.from_service(point) for point in history.points]

    @strawberry.field(
        description="The marks of one period taken in a classroom (its teachers and admins): "
        "what the register shows before it is taken again."
    )
    async def period_attendance(
        self, info: Info, classroom_id: strawberry.ID, date: date, period: int
    ) -> list[AttendanceRecord]:
        records = await attendance_resolvers.period_marks(info, classroom_id, date, period)
        return [AttendanceRecord.from_service(record) for record in records]


@strawberry.type
class AttendanceMutation:
    @strawberry.mutation(
        description="Mark one period for a classroom (teachers of it, admins). All or nothing."
    )
    async def mark_attendance(
        self, info: Info, input: MarkAttendanceInput
    ) -> MarkAttendancePayload:
        records = await attendance_resolvers.mark_attendance(
            info,
            classroom_id=input.classroom_id,
            day=input.date,
            period=input.period,
            subject_id=input.subject_id,
            marks=[(mark.student_id, mark.status) for mark in input.marks],
        )
        return MarkAttendancePayload(records=[AttendanceRecord.from_service(r) for r in records])
