"""Subscriptions: live attendance, dashboards and notifications (graphql-transport-ws)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from datetime import date, datetime
from typing import TypeVar

import strawberry

from graph.attendance import AttendanceStatus
from graph.attributes import from_attributes
from graph.dashboards import StudentDashboard
from graph.notifications import Notification
from graph.school import Subject
from resolvers import live as live_resolvers
from resolvers.context import Info
from resolvers.live import LiveMark

S = TypeVar("S")
T = TypeVar("T")


@strawberry.type(description="A period marked for a student, pushed as the register is taken.")
class AttendanceEvent:
    record_id: strawberry.ID
    student_id: strawberry.ID
    classroom_id: strawberry.ID
    date: date
    period: int
    status: AttendanceStatus
    subject: Subject
    marked_by: strawberry.ID = strawberry.field(description="The user who marked it.")
    marked_at: datetime = strawberry.field(description="When the mark's transaction ran.")

    @classmethod
    def from_live(cls, mark: LiveMark) -> AttendanceEvent:
        event, record = mark
        return from_attributes(
            cls,
            record,
            record_id=strawberry.ID(str(record.id)),
            subject=Subject(id=strawberry.ID(str(event.subject_id)), name=event.subject_name),
        )


async def _mapped(
    source: AsyncGenerator[S, None], convert: Callable[[S], T]
) -> AsyncGenerator[T, None]:
    """``source``'s items converted; closing this closes ``source`` (and its listener)."""
    async with aclosing(source):
        async for item in source:
            yield convert(item)


@strawberry.type
class LiveSubscription:
    @strawberry.subscription(
        description="Marks as they are made. A student: their own (also when naming their "
        "class). A teacher: a student or classroom they teach, or with no argument every "
        "classroom they teach. Staff: any student or classroom."
    )
    async def attendance_updated(
        self,
        info: Info,
        student_id: strawberry.ID | None = None,
        classroom_id: strawberry.ID | None = None,
    ) -> AsyncIterator[AttendanceEvent]:
        marks = await live_resolvers.attendance_events(info, student_id, classroom_id)
        return _mapped(marks, AttendanceEvent.from_live)

    @strawberry.subscription(
        description="The dashboard now, then each time a mark or a statistics refresh changes "
        "it. Default: the viewer's own."
    )
    async def dashboard_updated(
        self, info: Info, student_id: strawberry.ID | None = None
    ) -> AsyncIterator[StudentDashboard]:
        dashboards = await live_resolvers.dashboard_updates(info, student_id)
        return _mapped(dashboards, StudentDashboard.from_service)

    @strawberry.subscription(description="The viewer's in-app notifications as they are made.")
    async def notification_received(self, info: Info) -> AsyncIterator[Notification]:
        notifications = await live_resolvers.notifications_received(info)
        return _mapped(notifications, Notification.from_model)
