"""A student pushed to MAHROOM by markAttendance is notified once the worker runs."""

from __future__ import annotations

from datetime import date

from services.models import AttendanceStatus
from tests.factories import daily, gql, run_jobs

MARK = (
    "mutation M($input: MarkAttendanceInput!) { markAttendance(input: $input) { records { id } } }"
)
INBOX = "{ notifications(unreadOnly: true) { totalCount edges { node { type severity title message } } } }"


async def test_mahroom_alert_after_a_mark(client, factory, redis, settings):
    # given a student at exactly 80 % (OK, no sick or leave)
    history = [AttendanceStatus.PRESENT] * 16 + [AttendanceStatus.ABSENT] * 4
    school, student = await factory.student_with(daily(history, start=date(2026, 1, 5)))
    token = school.student_token(student)
    # when the teacher marks one more absence (16 of 21 present = 76.2 %), then another (72.7 %)
    for period in (1, 2):
        body = await gql(
            client,
            MARK,
            school.absence_today(student, period),
            token=school.token(school.teachers[0]),
        )
        assert "errors" not in body
        await run_jobs(settings)
    # then the student was warned at 76.2 %, then alerted at 72.7 %, once each
    inbox = (await gql(client, INBOX, token=token))["data"]["notifications"]
    assert [edge["node"]["type"] for edge in inbox["edges"]] == [
        "MAHROOM_ALERT",
        "ATTENDANCE_WARNING",
    ]
    assert inbox["edges"][0]["node"]["severity"] == "ERROR"
    # figures for people: one decimal for the rate, the threshold as the school set it
    assert inbox["edges"][0]["node"]["message"] == (
        "Your attendance rate is 72.7%, at or below 75%. Contact your school now."
    )
