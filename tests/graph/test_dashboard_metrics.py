"""Dashboard, statistics and rankings equal an independent computation over random records."""

from __future__ import annotations

import statistics as stats
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.models import AttendanceStatus
from tests.factories import gql

DASHBOARD = """
query Dashboard($id: ID) {
  studentDashboard(studentId: $id) {
    totalClasses presentDays absentDays sickDays leaveDays attendanceRate
    classAverage ranking classSize percentile trend standing
  }
}"""
CLASS = """
query Class($id: ID!) {
  classStatistics(classroomId: $id) {
    totalStudents averageAttendance medianAttendance highestAttendance lowestAttendance
    studentsAtRisk
  }
  classRankings(classroomId: $id, first: 100) {
    totalCount
    edges { node { studentId rank attendanceRate percentile } }
  }
}"""

# (days ago, period) -> status; at most one mark per student, day and period
marks_strategy = st.dictionaries(
    st.tuples(st.integers(0, 40), st.integers(1, 6)),
    st.sampled_from(list(AttendanceStatus)),
    max_size=40,
)


def expected_figures(marks: dict[tuple[int, int], AttendanceStatus]) -> dict[str, object]:
    statuses = list(marks.values())
    counted = sum(s is not AttendanceStatus.NOT_MARKED for s in statuses)
    present = statuses.count(AttendanceStatus.PRESENT)
    rate = Fraction(100) if counted == 0 else Fraction(100 * present, counted)

    def window(first: int, last: int) -> tuple[int, int]:
        chosen = [s for (ago, _), s in marks.items() if first <= ago <= last]
        return (
            chosen.count(AttendanceStatus.PRESENT),
            sum(s is not AttendanceStatus.NOT_MARKED for s in chosen),
        )

    (recent_present, recent_counted), (previous_present, previous_counted) = (
        window(0, 13),
        window(14, 27),
    )
    if recent_counted and previous_counted:
        change = Fraction(100 * recent_present, recent_counted) - Fraction(
            100 * previous_present, previous_counted
        )
        trend = "IMPROVING" if change > 2 else "DECLINING" if change < -2 else "STABLE"
    else:
        trend = "STABLE"
    sick_or_leave = statuses.count(AttendanceStatus.SICK) + statuses.count(AttendanceStatus.LEAVE)
    if rate <= 75:
        standing = "MAHROOM"
    elif rate < 80:
        standing = "WARNING"
    elif rate < 85 and sick_or_leave:
        standing = "TASDIQ"
    else:
        standing = "OK"
    return {
        "totalClasses": counted,
        "presentDays": present,
        "absentDays": statuses.count(AttendanceStatus.ABSENT),
        "sickDays": statuses.count(AttendanceStatus.SICK),
        "leaveDays": statuses.count(AttendanceStatus.LEAVE),
        "rate": float(rate),
        "trend": trend,
        "standing": standing,
    }


@pytest.mark.asyncio
@settings(max_examples=25)
@given(st.lists(marks_strategy, min_size=1, max_size=6))
async def test_metrics_equal_an_independent_computation(client, factory, per_student):
    # given a classroom whose students have random records
    school = await factory.school(students=len(per_student))
    today = datetime.now(UTC).date()
    for student, marks in zip(school.students, per_student, strict=True):
        await factory.records(
            school,
            student,
            [
                (today - timedelta(days=ago), period, status)
                for (ago, period), status in marks.items()
            ],
        )
    await factory.refresh()
    expected = [expected_figures(marks) for marks in per_student]
    rates = [figures["rate"] for figures in expected]
    size = len(rates)
    token = school.token(school.admin)

    # when / then: each dashboard
    for student, figures in zip(school.students, expected, strict=True):
        body = await gql(client, DASHBOARD, {"id": str(student.id)}, token=token)
        dashboard = body["data"]["studentDashboard"]
        rank = 1 + sum(other > figures["rate"] for other in rates)
        for key in (
            "totalClasses",
            "presentDays",
            "absentDays",
            "sickDays",
            "leaveDays",
            "trend",
            "standing",
        ):
            assert dashboard[key] == figures[key], key
        assert dashboard["attendanceRate"] == pytest.approx(figures["rate"])
        assert dashboard["classAverage"] == pytest.approx(stats.fmean(rates))
        assert dashboard["ranking"] == rank
        assert dashboard["classSize"] == size
        assert dashboard["percentile"] == pytest.approx(
            100.0 if size == 1 else (size - rank) * 100 / (size - 1)
        )

    # and the class's figures
    body = await gql(client, CLASS, {"id": str(school.classrooms[0].id)}, token=token)
    figures = body["data"]["classStatistics"]
    assert figures["totalStudents"] == size
    assert figures["averageAttendance"] == pytest.approx(stats.fmean(rates))
    assert figures["medianAttendance"] == pytest.approx(stats.median(rates))
    assert figures["highestAttendance"] == pytest.approx(max(rates))
    assert figures["lowestAttendance"] == pytest.approx(min(rates))
    assert figures["studentsAtRisk"] == sum(rate < 80 for rate in rates)
    rankings = body["data"]["classRankings"]
    assert rankings["totalCount"] == size
    by_student = {str(s.id): f["rate"] for s, f in zip(school.students, expected, strict=True)}
    listed = [edge["node"] for edge in rankings["edges"]]
    assert sorted(node["studentId"] for node in listed) == sorted(by_student)
    assert [node["rank"] for node in listed] == sorted(node["rank"] for node in listed)
    for node in listed:
        assert node["attendanceRate"] == pytest.approx(by_student[node["studentId"]])
        assert node["rank"] == 1 + sum(other > by_student[node["studentId"]] for other in rates)


async def test_rankings_pages_cover_the_class_once(client, factory):
    # given seven students with distinct rates
    school = await factory.school(students=7)
    today = datetime.now(UTC).date()
    for index, student in enumerate(school.students):
        marks = [
            (
                today - timedelta(days=day),
                1,
                AttendanceStatus.PRESENT if day >= index else AttendanceStatus.ABSENT,
            )
            for day in range(7)
        ]
        await factory.records(school, student, marks)
    await factory.refresh()
    query = """query Page($id: ID!, $after: String) {
      classRankings(classroomId: $id, first: 3, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { studentId rank } }
      }}"""
    token = school.token(school.teachers[0])
    seen, after, pages = [], None, 0
    # when walking every page
    while True:
        body = await gql(
            client, query, {"id": str(school.classrooms[0].id), "after": after}, token=token
        )
        page = body["data"]["classRankings"]
        seen += [edge["node"] for edge in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    # then each student appears once, best first
    assert pages == 3
    assert [node["rank"] for node in seen] == list(range(1, 8))
    assert sorted(node["studentId"] for node in seen) == sorted(str(s.id) for s in school.students)


async def test_a_foreign_cursor_is_a_validation_error(client, factory):
    school = await factory.school(students=1)
    body = await gql(
        client,
        'query R($id: ID!) { classRankings(classroomId: $id, after: "bm90LWEtY3Vyc29y") { totalCount } }',
        {"id": str(school.classrooms[0].id)},
        token=school.token(school.admin),
    )
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR"
    assert body["errors"][0]["extensions"]["field"] == "after"
