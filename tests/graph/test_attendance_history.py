"""attendanceHistory: the weekly rates behind the dashboard page's chart, with the dashboard's
access rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.metrics import week_start
from services.models import AttendanceStatus
from tests.factories import error_codes, gql

HISTORY = """
query History($studentId: ID, $weeks: Int!) {
  attendanceHistory(studentId: $studentId, weeks: $weeks) {
    weekStart weekEnd totalClasses presentCount attendanceRate cumulativeClasses cumulativeRate
  }
}"""
DASHBOARD = "query { studentDashboard { attendanceRate } }"


async def test_a_student_reads_their_own_weeks_ending_with_the_dashboard_rate(client, factory):
    # given marks this week and three weeks ago
    today = datetime.now(UTC).date()
    monday = week_start(today)
    school, student = await factory.student_with(
        [
            (today, 1, AttendanceStatus.PRESENT),
            (today, 2, AttendanceStatus.ABSENT),
            (monday - timedelta(days=21), 1, AttendanceStatus.PRESENT),
        ],
    )
    token = school.student_token(student)
    # when
    body = await gql(client, HISTORY, {"weeks": 4}, token=token)
    dashboard = await gql(client, DASHBOARD, token=token)
    # then
    points = body["data"]["attendanceHistory"]
    assert [p["weekStart"] for p in points] == [
        (monday - timedelta(days=7 * n)).isoformat() for n in (3, 2, 1, 0)
    ]
    assert points[-1]["weekEnd"] == (monday + timedelta(days=6)).isoformat()
    assert [p["totalClasses"] for p in points] == [1, 0, 0, 2]
    assert [p["attendanceRate"] for p in points] == [100.0, 100.0, 100.0, 50.0]
    assert [p["cumulativeClasses"] for p in points] == [1, 1, 1, 3]
    assert [p["cumulativeRate"] for p in points] == [100.0, 100.0, 100.0, 200 / 3]
    assert points[-1]["cumulativeRate"] == dashboard["data"]["studentDashboard"]["attendanceRate"]


async def test_a_mark_shows_on_the_next_read(client, factory):
    # given a history read once (and so cached)
    school = await factory.school(students=1)
    student = school.students[0]
    token = school.student_token(student)
    before = await gql(client, HISTORY, {"weeks": 1}, token=token)
    assert before["data"]["attendanceHistory"][0]["totalClasses"] == 0
    # when a teacher marks today
    marked = await gql(
        client,
        """mutation Mark($input: MarkAttendanceInput!) {
             markAttendance(input: $input) { records { id } } }""",
        school.absence_today(student),
        token=school.token(school.teachers[0]),
    )
    assert "errors" not in marked, marked
    # then
    after = await gql(client, HISTORY, {"weeks": 1}, token=token)
    assert after["data"]["attendanceHistory"][0]["totalClasses"] == 1
    assert after["data"]["attendanceHistory"][0]["cumulativeRate"] == 0.0


async def test_students_read_only_themselves_and_teachers_their_classes(client, factory):
    # given two classrooms, each with its own teacher
    school = await factory.school(classrooms=2, students=1, teachers=2)
    mine, theirs = school.students
    # when / then: a student naming a classmate's id is refused, as for the dashboard
    other = await gql(
        client, HISTORY, {"studentId": str(theirs.id), "weeks": 2}, token=school.student_token(mine)
    )
    assert error_codes(other) == ["FORBIDDEN"]
    teacher, second_teacher = school.teachers
    taught = await gql(
        client, HISTORY, {"studentId": str(mine.id), "weeks": 2}, token=school.token(teacher)
    )
    assert len(taught["data"]["attendanceHistory"]) == 2
    not_taught = await gql(
        client, HISTORY, {"studentId": str(mine.id), "weeks": 2}, token=school.token(second_teacher)
    )
    assert error_codes(not_taught) == ["FORBIDDEN"]
    admin = await gql(
        client, HISTORY, {"studentId": str(theirs.id), "weeks": 2}, token=school.token(school.admin)
    )
    assert len(admin["data"]["attendanceHistory"]) == 2


async def test_another_tenants_student_is_not_found_and_weeks_are_bounded(client, factory):
    school = await factory.school(students=1)
    elsewhere = await factory.school(students=1)
    admin = school.token(school.admin)
    foreign = await gql(
        client, HISTORY, {"studentId": str(elsewhere.students[0].id), "weeks": 2}, token=admin
    )
    assert error_codes(foreign) == ["NOT_FOUND"]
    too_many = await gql(
        client, HISTORY, {"studentId": str(school.students[0].id), "weeks": 53}, token=admin
    )
    assert error_codes(too_many) == ["VALIDATION_ERROR"]
    assert too_many["errors"][0]["extensions"]["field"] == "weeks"
    anonymous = await gql(client, HISTORY, {"weeks": 2})
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
