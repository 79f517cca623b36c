"""Each threshold crossing yields exactly one notification of the right type (random histories)."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.alerts import check_thresholds
from services.models import AttendanceStatus, Notification
from services.notifications import update_preferences
from tests.factories import daily

STATUS = st.sampled_from(
    [AttendanceStatus.PRESENT] * 3
    + [AttendanceStatus.ABSENT, AttendanceStatus.SICK, AttendanceStatus.LEAVE]
)
ALERT_TYPE = {"MAHROOM": "MAHROOM_ALERT", "WARNING": "ATTENDANCE_WARNING", "TASDIQ": "TASDIQ_ALERT"}


def expected_standing(statuses: list[AttendanceStatus]) -> str:
    if not statuses:
        return "OK"
    rate = Fraction(100 * statuses.count(AttendanceStatus.PRESENT), len(statuses))
    excused = statuses.count(AttendanceStatus.SICK) + statuses.count(AttendanceStatus.LEAVE)
    if rate <= 75:
        return "MAHROOM"
    if rate < 80:
        return "WARNING"
    if rate < 85 and excused:
        return "TASDIQ"
    return "OK"


async def notifications_of(factory, user_id) -> list[Notification]:
    async with factory.session_factory() as session:
        return list(
            await session.scalars(
                select(Notification)
                .where(Notification.user_id == user_id)
                .order_by(Notification.created_at)
            )
        )


@pytest.mark.asyncio
@settings(max_examples=30)
@given(
    batches=st.lists(st.lists(STATUS, min_size=1, max_size=8), min_size=1, max_size=8),
    repeat_checks=st.booleans(),
    alerts_on=st.booleans(),
)
async def test_every_crossing_notifies_once(factory, batches, repeat_checks, alerts_on):
    # given a student whose marks arrive in random batches, checked after each one
    school = await factory.school(students=1)
    student = school.students[0]
    account = school.accounts[student.id]
    if not alerts_on:
        async with factory.session_factory() as session:
            await update_preferences(
                session,
                tenant_id=school.tenant.id,
                user_id=account.id,
                changes={"attendance_alerts": False},
            )
    history: list[AttendanceStatus] = []
    expected: list[str] = []
    previous = "OK"
    day = date(2026, 1, 5)
    for batch in batches:
        await factory.records(
            school, student, daily(batch, start=day + timedelta(days=len(history)))
        )
        history += batch
        # when the check runs (sometimes twice, as a retried job would)
        for _ in range(2 if repeat_checks else 1):
            await check_thresholds(
                session_factory=factory.session_factory,
                tenant_id=school.tenant.id,
                student_ids=[student.id],
            )
        current = expected_standing(history)
        if current != previous and current != "OK":
            expected.append(ALERT_TYPE[current])
        previous = current
    # then one notification per crossing into a non-OK standing, none when alerts are off
    got = [n.type.value for n in await notifications_of(factory, account.id)]
    assert got == (expected if alerts_on else [])


async def test_a_student_without_an_account_is_tracked_but_not_notified(factory, session_factory):
    school = await factory.school(students=1)
    student = school.students[0]
    async with session_factory() as session, session.begin():
        student = await session.merge(student)
        student.user_id = None
    await factory.records(school, student, [(date(2026, 1, 5), 1, AttendanceStatus.ABSENT)])
    assert (
        await check_thresholds(
            session_factory=session_factory, tenant_id=school.tenant.id, student_ids=[student.id]
        )
        == []
    )
