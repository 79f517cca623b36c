"""The dashboard's class figures: from the last snapshot, and from the live views for a student
the snapshot does not hold yet."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.dashboards import student_dashboard
from services.metrics import Thresholds
from services.models import AttendanceStatus, Student
from services.platform.errors import NotFound

TODAY = date(2026, 11, 30)


async def dashboard_of(session_factory, school, student):
    return await session_factory.reading(
        lambda session: student_dashboard(
            session,
            tenant_id=school.tenant.id,
            student_id=student.id,
            thresholds=Thresholds(),
            today=TODAY,
            now=datetime.now(UTC),
        )
    )


async def test_a_student_newer_than_the_snapshot_is_ranked_live(factory, session_factory):
    # given two students with records, snapshotted
    school = await factory.school(students=2)
    present, absent = school.students
    yesterday = TODAY - timedelta(days=1)
    await factory.records(school, present, [(yesterday, 1, AttendanceStatus.PRESENT)])
    await factory.records(school, absent, [(yesterday, 1, AttendanceStatus.ABSENT)])
    await factory.refresh()
    snapshotted = await dashboard_of(session_factory, school, absent)
    # when a third student joins the class after the refresh
    async with session_factory() as session, session.begin():
        newcomer = Student(
            tenant_id=school.tenant.id, classroom_id=present.classroom_id, name="Newcomer"
        )
        session.add(newcomer)
    joined = await dashboard_of(session_factory, school, newcomer)
    # then the snapshotted student's figures are the snapshot's, computed at the refresh
    assert (snapshotted.ranking.rank, snapshotted.ranking.total_students) == (2, 2)
    assert snapshotted.class_average == 50.0
    assert snapshotted.statistics_calculated_at == snapshotted.ranking.calculated_at
    # and the newcomer is ranked among three live, against the snapshot's class average,
    # dated by the older of the two
    assert (joined.ranking.rank, joined.ranking.total_students) == (1, 3)
    assert joined.class_average == 50.0
    assert joined.statistics_calculated_at == snapshotted.statistics_calculated_at
    assert joined.ranking.calculated_at > joined.statistics_calculated_at


async def test_an_unknown_student_has_no_dashboard(factory, session_factory):
    school = await factory.school(students=1)
    other = await factory.school(students=1)
    with pytest.raises(NotFound):
        await dashboard_of(session_factory, school, other.students[0])
