"""Live subscriptions: the viewer's rights checked as for the matching query, then events.

Each resolver checks everything before it returns its stream, so that a refusal reaches the
client as the subscription's ``error`` message; the stream listens to the hub only once it is
iterated, and stops listening however it ends.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from typing import Any

from resolvers.context import Context, Info, parse_id
from resolvers.dashboards import student_or_own
from resolvers.loaders import load_existing
from services.dashboards import AttendanceEntry, StudentDashboard
from services.live import (
    Channel,
    MarksEvent,
    NotificationEvent,
    classroom_channel,
    statistics_channel,
    user_channel,
)
from services.models import Role
from services.platform.errors import Forbidden, Invalid, NotFound

Selection = Callable[[MarksEvent], Iterable[AttendanceEntry]]
LiveMark = tuple[MarksEvent, AttendanceEntry]


def _whole_class(event: MarksEvent) -> Iterable[AttendanceEntry]:
    return event.records


def _one_student(student_id: uuid.UUID) -> Selection:
    def select(event: MarksEvent) -> Iterable[AttendanceEntry]:
        return event.by_student.get(student_id, ())

    return select


async def attendance_events(
    info: Info, student_id: str | None, classroom_id: str | None
) -> AsyncGenerator[LiveMark, None]:
    """Marks of one student (theirs, their teachers', staff) or of classrooms. A student naming
    their class still receives only their own marks: classmates' statuses are not theirs."""
    context = info.context
    viewer = context.viewer
    tenant_id = viewer.tenant_id
    student = parse_id(student_id, "studentId") if student_id is not None else None
    classroom = parse_id(classroom_id, "classroomId") if classroom_id is not None else None
    if student is None and classroom is None:
        if viewer.student_id is not None:
            student = viewer.student_id
        elif viewer.role is Role.TEACHER:
            taught = sorted(await context.access.own_classroom_ids())
            if not taught:
                raise Invalid("classroomId", "You teach no classroom: name a classroomId.")
            channels = [classroom_channel(tenant_id, key) for key in taught]
            return _marks(context, channels, _whole_class)
        else:
            raise Invalid("studentId", "Name a studentId or a classroomId.")
    if student is not None:
        found = await load_existing(context.loaders.students, student, "student")
        if classroom is not None and found.classroom_id != classroom:
            raise Invalid("classroomId", "This student is not in this classroom.")
        await context.access.ensure_can_read_student(
            student_id=found.id, classroom_id=found.classroom_id
        )
        return _marks(
            context, [classroom_channel(tenant_id, found.classroom_id)], _one_student(found.id)
        )
    assert classroom is not None
    if await context.loaders.classrooms.load(classroom) is None:
        raise NotFound("No such classroom.")
    await context.access.ensure_can_read_classroom(classroom)
    if viewer.role is Role.STUDENT:
        if viewer.student_id is None:
            raise Forbidden("Your account has no student record.")
        select = _one_student(viewer.student_id)
    else:
        select = _whole_class
    return _marks(context, [classroom_channel(tenant_id, classroom)], select)


async def _marks(
    context: Context, channels: Sequence[Channel[Any]], select: Selection
) -> AsyncGenerator[LiveMark, None]:
    async with context.hub.listen(channels) as listener:
        while True:
            event = await listener.next()
            if isinstance(event, MarksEvent):
                for record in select(event):
                    yield event, record


async def dashboard_updates(
    info: Info, student_id: str | None
) -> AsyncGenerator[StudentDashboard, None]:
    """The dashboard now, then whenever it changed after a mark of the student, a statistics
    refresh or a reconnection of the hub. Every push reads through the cache: one computation per
    change serves every subscriber of the student, in every process."""
    context = info.context
    student = student_or_own(info, student_id)
    current = await context.reads.student_dashboard(student)
    channels = [
        classroom_channel(context.viewer.tenant_id, current.value.classroom_id),
        statistics_channel(context.viewer.tenant_id),
    ]
    return _dashboards(context, student, channels)


async def _dashboards(
    context: Context, student: uuid.UUID, channels: Sequence[Channel[Any]]
) -> AsyncGenerator[StudentDashboard, None]:
    async with context.hub.listen(channels) as listener:
        # Read after listening: a change between the check and now is not missed.
        last = (await context.reads.student_dashboard(student)).value
        yield last
        while True:
            if not _changes_dashboard(await listener.next(), student):
                continue
            async with context.hub.refreshes:
                # Events that queued meanwhile are covered by this one read.
                listener.pending()
                current = (await context.reads.student_dashboard(student)).value
            if current != last:
                last = current
                yield current


def _changes_dashboard(event: object, student: uuid.UUID) -> bool:
    """Marks of the student, a statistics refresh, or RESYNC (anything may have changed)."""
    return not isinstance(event, MarksEvent) or student in event.by_student


async def notifications_received(info: Info) -> AsyncGenerator[NotificationEvent, None]:
    """The viewer's in-app notifications as the jobs create them."""
    context = info.context
    viewer = context.viewer
    return _notifications(context, [user_channel(viewer.tenant_id, viewer.user_id)])


async def _notifications(
    context: Context, channels: Sequence[Channel[Any]]
) -> AsyncGenerator[NotificationEvent, None]:
    async with context.hub.listen(channels) as listener:
        while True:
            event = await listener.next()
            if isinstance(event, NotificationEvent):
                yield event
