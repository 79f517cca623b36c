"""markAttendance: rights, validation that names the field and writes nothing, read-your-writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.models import AttendanceRecord
from tests.factories import School, error_codes, gql

MARK = """
mutation Mark($input: MarkAttendanceInput!) {
  markAttendance(input: $input) {
    records { id studentId date period status markedBy subject { name } student { name } }
  }
}"""
DASHBOARD = (
    "query D($id: ID) { studentDashboard(studentId: $id) { totalClasses absentDays presentDays } }"
)


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def mark_input(
    school: School, marks: list[tuple[object, str]], **overrides: object
) -> dict[str, object]:
    return {
        "classroomId": str(school.classrooms[0].id),
        "date": today(),
        "period": 1,
        "subjectId": str(school.subjects[0].id),
        "marks": [{"studentId": str(student), "status": status} for student, status in marks],
        **overrides,
    }


async def record_count(factory, school: School) -> int:
    return await factory.count(AttendanceRecord, AttendanceRecord.tenant_id == school.tenant.id)


async def test_teacher_marks_and_the_next_dashboard_shows_it(client, factory):
    # given
    school = await factory.school(students=3)
    student = school.students[0]
    before = (await gql(client, DASHBOARD, token=school.student_token(student)))["data"][
        "studentDashboard"
    ]
    # when
    body = await gql(
        client,
        MARK,
        {
            "input": mark_input(
                school, [(s.id, "ABSENT" if s is student else "PRESENT") for s in school.students]
            )
        },
        token=school.token(school.teachers[0]),
    )
    # then
    records = body["data"]["markAttendance"]["records"]
    assert [r["studentId"] for r in records] == [str(s.id) for s in school.students]
    assert records[0]["status"] == "ABSENT" and records[0]["markedBy"] == str(school.teachers[0].id)
    after = (await gql(client, DASHBOARD, token=school.student_token(student)))["data"][
        "studentDashboard"
    ]
    assert after["totalClasses"] == before["totalClasses"] + 1
    assert after["absentDays"] == before["absentDays"] + 1


async def test_marking_a_period_again_replaces_the_mark(client, factory):
    school = await factory.school(students=1)
    student = school.students[0]
    token = school.token(school.teachers[0])
    await gql(client, MARK, {"input": mark_input(school, [(student.id, "ABSENT")])}, token=token)
    body = await gql(
        client, MARK, {"input": mark_input(school, [(student.id, "SICK")])}, token=token
    )
    assert body["data"]["markAttendance"]["records"][0]["status"] == "SICK"
    assert await record_count(factory, school) == 1
    dashboard = (await gql(client, DASHBOARD, token=school.student_token(student)))["data"][
        "studentDashboard"
    ]
    assert (dashboard["totalClasses"], dashboard["absentDays"]) == (1, 0)


async def test_admin_may_mark_any_classroom(client, factory):
    school = await factory.school(students=1)
    body = await gql(
        client,
        MARK,
        {"input": mark_input(school, [(school.students[0].id, "PRESENT")])},
        token=school.token(school.admin),
    )
    assert "errors" not in body


@pytest.mark.parametrize("who", ["unassigned teacher", "student", "other tenant's teacher"])
async def test_only_the_classroom_s_teachers_may_mark(client, factory, who):
    # given a classroom taught by teacher 0 only
    school = await factory.school(classrooms=2, students=1, teachers=2)
    other = await factory.school(students=1)
    token = {
        "unassigned teacher": school.token(school.teachers[1]),
        "student": school.student_token(school.students[0]),
        "other tenant's teacher": other.token(other.teachers[0]),
    }[who]
    # when
    body = await gql(
        client,
        MARK,
        {"input": mark_input(school, [(school.students[0].id, "ABSENT")])},
        token=token,
    )
    # then
    assert body["data"] is None
    assert error_codes(body) == ["NOT_FOUND" if who == "other tenant's teacher" else "FORBIDDEN"]
    assert await record_count(factory, school) == 0


@pytest.fixture(scope="module")
async def two_classes(factory) -> School:
    return await factory.school(classrooms=2, students=3, subjects=2)


def invalid_inputs(school: School) -> dict[str, tuple[dict[str, object], str]]:
    mine, theirs = (
        school.students_of(school.classrooms[0]),
        school.students_of(school.classrooms[1]),
    )
    valid = [(s.id, "PRESENT") for s in mine]
    tomorrow = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
    return {
        "unknown student": (
            mark_input(school, [*valid, (uuid.uuid4(), "ABSENT")]),
            "marks[3].studentId",
        ),
        "student of another classroom": (
            mark_input(school, [valid[0], (theirs[0].id, "ABSENT")]),
            "marks[1].studentId",
        ),
        "student id that is no id": (
            mark_input(school, [valid[0], ("nope", "ABSENT")]),
            "marks[1].studentId",
        ),
        "future date": (mark_input(school, valid, date=tomorrow), "date"),
        "period zero": (mark_input(school, valid, period=0), "period"),
        "period past the day": (mark_input(school, valid, period=7), "period"),
        "duplicate student": (mark_input(school, [*valid, valid[1]]), "marks[3].studentId"),
        "no marks": (mark_input(school, []), "marks"),
        "subject not taught": (mark_input(school, valid, subjectId=str(uuid.uuid4())), "subjectId"),
        "classroom id that is no id": (mark_input(school, valid, classroomId="x"), "classroomId"),
        "date that is no date": (mark_input(school, valid, date="2026-02-30"), "date"),
        "unknown status": (mark_input(school, [(mine[0].id, "LATE")]), "marks[0].status"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "unknown student",
        "student of another classroom",
        "student id that is no id",
        "future date",
        "period zero",
        "period past the day",
        "duplicate student",
        "no marks",
        "subject not taught",
        "classroom id that is no id",
        "date that is no date",
        "unknown status",
    ],
)
async def test_invalid_input_names_the_field_and_writes_nothing(client, factory, two_classes, case):
    payload, field = invalid_inputs(two_classes)[case]
    before = await record_count(factory, two_classes)
    body = await gql(
        client, MARK, {"input": payload}, token=two_classes.token(two_classes.teachers[0])
    )
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "VALIDATION_ERROR"
    assert error["extensions"]["field"] == field
    assert await record_count(factory, two_classes) == before


@pytest.mark.asyncio
@settings(max_examples=40)
@given(
    statuses=st.lists(
        st.sampled_from(["PRESENT", "ABSENT", "SICK", "LEAVE", "NOT_MARKED"]),
        min_size=1,
        max_size=3,
    ),
    bad_index=st.integers(0, 3),
    period=st.integers(1, 6),
)
async def test_one_bad_mark_rejects_the_whole_call(
    client, factory, two_classes, statuses, bad_index, period
):
    # given valid marks with an unknown student slipped in at a random place
    mine = two_classes.students_of(two_classes.classrooms[0])
    marks = [(student.id, status) for student, status in zip(mine, statuses, strict=False)]
    bad_index = min(bad_index, len(marks))
    marks.insert(bad_index, (uuid.uuid4(), "PRESENT"))
    before = await record_count(factory, two_classes)
    # when
    body = await gql(
        client,
        MARK,
        {"input": mark_input(two_classes, marks, period=period)},
        token=two_classes.token(two_classes.teachers[0]),
    )
    # then
    assert body["errors"][0]["extensions"]["field"] == f"marks[{bad_index}].studentId"
    assert await record_count(factory, two_classes) == before


PERIOD = """query Period($classroomId: ID!, $date: Date!, $period: Int!) {
  periodAttendance(classroomId: $classroomId, date: $date, period: $period) {
    studentId period status subject { name }
  }
}"""


async def test_a_register_reads_the_period_it_takes_again_and_only_its_markers_may(client, factory):
    school = await factory.school(classrooms=2, students=2, teachers=2)
    first, second = school.students_of(school.classrooms[0])
    teacher = school.token(school.teachers[0])
    marks = [(first.id, "ABSENT"), (second.id, "PRESENT")]
    body = await gql(client, MARK, {"input": mark_input(school, marks, period=2)}, token=teacher)
    assert "errors" not in body, body
    period = {"classroomId": str(school.classrooms[0].id), "date": today(), "period": 2}
    read = await gql(client, PERIOD, period, token=teacher)
    assert sorted(
        (r["studentId"], r["status"], r["period"]) for r in read["data"]["periodAttendance"]
    ) == sorted([(str(first.id), "ABSENT", 2), (str(second.id), "PRESENT", 2)])
    admin = await gql(client, PERIOD, period, token=school.token(school.admin))
    assert admin["data"] == read["data"]
    empty = await gql(client, PERIOD, {**period, "period": 1}, token=teacher)
    assert empty == {"data": {"periodAttendance": []}}
    for refused in (school.token(school.teachers[1]), school.student_token(first)):
        assert error_codes(await gql(client, PERIOD, period, token=refused)) == ["FORBIDDEN"]
    other = await factory.school()
    foreign = await gql(client, PERIOD, period, token=other.token(other.admin))
    assert foreign == {"data": {"periodAttendance": []}}
