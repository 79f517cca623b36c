"""weeklyAttendance: seven days from weekStart, records by period, the week's own rate."""

from __future__ import annotations

from datetime import date, timedelta

from services.models import AttendanceStatus
from tests.factories import api_process, gql

WEEK = """
query Week($start: Date!) {
  weeklyAttendance(weekStart: $start) {
    weekStart weekEnd totalClasses presentCount absentCount sickCount leaveCount attendanceRate
    days { date records { period status subject { name } } }
  }
}"""


async def test_the_week_groups_records_by_day_and_period(client, factory):
    # given marks inside the week and just outside it
    monday = date(2026, 3, 2)
    school, student = await factory.student_with(
        [
            (monday, 2, AttendanceStatus.ABSENT),
            (monday, 1, AttendanceStatus.PRESENT),
            (monday + timedelta(days=2), 1, AttendanceStatus.SICK),
            (monday + timedelta(days=6), 3, AttendanceStatus.NOT_MARKED),
            (monday - timedelta(days=1), 1, AttendanceStatus.ABSENT),
            (monday + timedelta(days=7), 1, AttendanceStatus.ABSENT),
        ],
    )
    # when
    body = await gql(
        client, WEEK, {"start": monday.isoformat()}, token=school.student_token(student)
    )
    # then
    week = body["data"]["weeklyAttendance"]
    assert (week["weekStart"], week["weekEnd"]) == ("2026-03-02", "2026-03-08")
    assert [day["date"] for day in week["days"]] == [
        (monday + timedelta(days=n)).isoformat() for n in range(7)
    ]
    assert [(r["period"], r["status"]) for r in week["days"][0]["records"]] == [
        (1, "PRESENT"),
        (2, "ABSENT"),
    ]
    assert week["days"][2]["records"][0]["subject"]["name"] == school.subjects[0].name
    assert week["days"][1]["records"] == []
    assert (week["totalClasses"], week["presentCount"], week["absentCount"], week["sickCount"]) == (
        3,
        1,
        1,
        1,
    )
    assert week["attendanceRate"] == 100 / 3


async def test_another_process_reads_the_cached_week_with_its_records(client, settings, factory):
    """The second process finds the week in Redis (L2) and rebuilds its records from it."""
    monday = date(2026, 3, 2)
    school, student = await factory.student_with([(monday, 1, AttendanceStatus.SICK)])
    token = school.student_token(student)
    first = await gql(client, WEEK, {"start": monday.isoformat()}, token=token)
    async with api_process(settings) as second_process:
        response = await second_process.post(
            "/graphql",
            json={"query": WEEK, "variables": {"start": monday.isoformat()}},
            headers={"authorization": f"Bearer {token}"},
        )
    assert response.headers["cache-status"] == "rollcall; hit"
    assert response.json() == {**first, "extensions": response.json()["extensions"]}
    assert response.json()["data"]["weeklyAttendance"]["days"][0]["records"][0]["status"] == "SICK"
