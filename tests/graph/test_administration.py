"""The staff side through the endpoint: classrooms, students, teachers and thresholds. Admins
only, within their tenant, audited; bad input changes nothing."""

from __future__ import annotations

import math
import re
import uuid
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.models import (
    AttendanceRecord,
    AttendanceStatus,
    AuditAction,
    AuditLog,
    Classroom,
    ClassroomSubject,
    Notification,
    NotificationType,
    Role,
    Student,
    TeacherAssignment,
    Tenant,
    User,
)
from tests.factories import counted_statements, error_codes, gql, run_jobs

CREATE_CLASSROOM = """mutation CreateClassroom($input: CreateClassroomInput!) {
  createClassroom(input: $input) { id name subjects { name } teachers { email } }
}"""
CREATE_STUDENT = """mutation CreateStudent($input: CreateStudentInput!) {
  createStudent(input: $input) { id name classroom { id name } }
}"""
MOVE = """mutation MoveStudent($student: ID!, $classroom: ID!) {
  moveStudent(studentId: $student, classroomId: $classroom) { id classroom { id } }
}"""
ASSIGN = """mutation AssignTeacher($classroom: ID!, $email: String!) {
  assignTeacher(classroomId: $classroom, email: $email) { id teachers { email } }
}"""
UPDATE_THRESHOLDS = """mutation UpdateAttendanceThresholds($input: AttendanceThresholdsInput!) {
  updateAttendanceThresholds(input: $input) { mahroomAtOrBelow warningBelow tasdiqBelow }
}"""
THRESHOLDS = "{ attendanceThresholds { mahroomAtOrBelow warningBelow tasdiqBelow } }"
STANDING = "{ studentDashboard { attendanceRate standing } }"
CLASS = """query($id: ID!) {
  classStatistics(classroomId: $id) { totalStudents }
  classRankings(classroomId: $id) { totalCount edges { node { studentId } } }
}"""
RECORDS = """query($student: ID!, $week: Date!) {
  weeklyAttendance(studentId: $student, weekStart: $week) {
    days { records { classroomId status } }
  }
}"""


def data(body: dict) -> dict:
    assert "errors" not in body, body
    return body["data"]


def field_of(body: dict) -> str:
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "VALIDATION_ERROR", body
    return error["extensions"]["field"]


async def audit_actions(factory, school) -> list[AuditAction]:
    async with factory.session_factory() as session:
        return list(
            await session.scalars(
                select(AuditLog.action)
                .where(AuditLog.tenant_id == school.tenant.id)
                .order_by(AuditLog.id)
            )
        )


@pytest.fixture
async def school(factory):
    return await factory.school(classrooms=2, students=2, teachers=2)


def mutations(school) -> list[tuple[str, dict]]:
    classroom = str(school.classrooms[0].id)
    return [
        (CREATE_CLASSROOM, {"input": {"name": "12-Z"}}),
        (
            CREATE_STUDENT,
            {"input": {"name": "New", "email": "new@school.test", "classroomId": classroom}},
        ),
        (MOVE, {"student": str(school.students[0].id), "classroom": str(school.classrooms[1].id)}),
        (ASSIGN, {"classroom": classroom, "email": "t-new@school.test"}),
        (
            UPDATE_THRESHOLDS,
            {"input": {"mahroomAtOrBelow": 10, "warningBelow": 20, "tasdiqBelow": 30}},
        ),
    ]


@pytest.mark.parametrize("role", ["teacher", "student", "partner"])
async def test_every_administration_mutation_is_for_admins_only(client, factory, school, role):
    token = {
        "teacher": school.token(school.teachers[0]),
        "student": school.student_token(school.students[0]),
        "partner": await factory.partner(school),
    }[role]
    await factory.trust(*(query for query, _ in mutations(school)))  # partners run no other
    for query, variables in mutations(school):
        assert error_codes(await gql(client, query, variables, token=token)) == ["FORBIDDEN"]
    assert await audit_actions(factory, school) == []
    async with factory.session_factory() as session:
        tenant = await session.get(Tenant, school.tenant.id, populate_existing=True)
        moved = await session.get(Student, school.students[0].id, populate_existing=True)
    assert (tenant.mahroom_threshold, tenant.warning_threshold) == (75, 80)
    assert moved.classroom_id == school.classrooms[0].id


async def test_a_new_classroom_teaches_every_subject_and_its_name_is_unique(
    client, factory, school
):
    admin = school.token(school.admin)
    created = data(await gql(client, CREATE_CLASSROOM, {"input": {"name": " 12  B "}}, token=admin))
    room = created["createClassroom"]
    assert room["name"] == "12 B"
    assert sorted(s["name"] for s in room["subjects"]) == ["Subject 0", "Subject 1"]
    again = await gql(client, CREATE_CLASSROOM, {"input": {"name": "12 B"}}, token=admin)
    assert field_of(again) == "input.name"
    assert await audit_actions(factory, school) == [AuditAction.CLASSROOM_CREATE]


async def test_a_classroom_may_name_its_subjects_but_only_the_schools_own(client, factory, school):
    admin = school.token(school.admin)
    other = await factory.school()
    foreign = {"name": "X", "subjectIds": [str(school.subjects[1].id), str(other.subjects[0].id)]}
    assert field_of(await gql(client, CREATE_CLASSROOM, {"input": foreign}, token=admin)) == (
        "input.subjectIds[1]"
    )
    own = {"name": "X", "subjectIds": [str(school.subjects[1].id)]}
    room = data(await gql(client, CREATE_CLASSROOM, {"input": own}, token=admin))
    assert room["createClassroom"]["subjects"] == [{"name": "Subject 1"}]
    async with factory.session_factory() as session:
        taught = await session.scalars(
            select(ClassroomSubject).where(ClassroomSubject.tenant_id == other.tenant.id)
        )
        assert len(list(taught)) == 2  # the other school's classroom only


async def test_a_created_student_has_an_account_without_a_password(client, factory, school):
    admin = school.token(school.admin)
    room = school.classrooms[1]
    body = await gql(
        client,
        CREATE_STUDENT,
        {"input": {"name": "Dilnoza", "email": "Dilnoza@School.Test", "classroomId": str(room.id)}},
        token=admin,
    )
    student = data(body)["createStudent"]
    assert student["classroom"] == {"id": str(room.id), "name": room.name}
    async with factory.session_factory() as session:
        account = await session.scalar(
            select(User)
            .join(Student, Student.user_id == User.id)
            .where(Student.id == uuid.UUID(student["id"]))
        )
    assert (account.email, account.role, account.password_hash) == (
        "dilnoza@school.test",
        Role.STUDENT,
        None,
    )
    login = await gql(
        client,
        "mutation { login(tenant: $t, email: $e, password: $p) { token } }".replace(
            "$t", f'"{school.tenant.slug}"'
        )
        .replace("$e", '"dilnoza@school.test"')
        .replace("$p", '"any password at all"'),
    )
    assert error_codes(login) == ["UNAUTHENTICATED"]
    again = await gql(
        client,
        CREATE_STUDENT,
        {"input": {"name": "Twin", "email": "dilnoza@school.test", "classroomId": str(room.id)}},
        token=admin,
    )
    assert field_of(again) == "input.email"
    assert await audit_actions(factory, school) == [
        AuditAction.STUDENT_CREATE,
        AuditAction.LOGIN_FAILURE,
    ]


@pytest.mark.parametrize(
    ("student", "problem"),
    [
        ({"name": "", "email": "a@school.test"}, "input.name"),
        ({"name": "A\x00B", "email": "a@school.test"}, "input.name"),
        ({"name": "x" * 201, "email": "a@school.test"}, "input.name"),
        ({"name": "Ann", "email": "not an email"}, "input.email"),
        ({"name": "Ann", "email": "a@school.test", "classroomId": "nope"}, "input.classroomId"),
    ],
)
async def test_bad_student_input_names_its_field_and_writes_nothing(
    client, factory, school, student, problem
):
    variables = {"input": {"classroomId": str(school.classrooms[0].id), **student}}
    body = await gql(client, CREATE_STUDENT, variables, token=school.token(school.admin))
    assert field_of(body) == problem
    assert await audit_actions(factory, school) == []


async def test_another_schools_classroom_is_not_found(client, factory, school):
    other = await factory.school()
    admin = school.token(school.admin)
    student = {"name": "A", "email": "a@school.test", "classroomId": str(other.classrooms[0].id)}
    body = await gql(client, CREATE_STUDENT, {"input": student}, token=admin)
    assert error_codes(body) == ["NOT_FOUND"]
    moved = {"student": str(school.students[0].id), "classroom": str(other.classrooms[0].id)}
    assert error_codes(await gql(client, MOVE, moved, token=admin)) == ["NOT_FOUND"]
    foreign = {"student": str(other.students[0].id), "classroom": str(school.classrooms[1].id)}
    assert error_codes(await gql(client, MOVE, foreign, token=admin)) == ["NOT_FOUND"]
    assign = {"classroom": str(other.classrooms[0].id), "email": "t@school.test"}
    assert error_codes(await gql(client, ASSIGN, assign, token=admin)) == ["NOT_FOUND"]


async def test_a_moved_student_keeps_their_history_and_both_classes_refresh(
    client, factory, school
):
    admin = school.token(school.admin)
    old, new = school.classrooms
    student = school.students_of(old)[0]
    monday = date.today() - timedelta(days=date.today().weekday() + 7)
    await factory.records(school, student, [(monday, 1, AttendanceStatus.ABSENT)])
    await factory.refresh()
    before = data(await gql(client, CLASS, {"id": str(old.id)}, token=admin))
    assert before["classStatistics"]["totalStudents"] == 2
    moved = await gql(
        client, MOVE, {"student": str(student.id), "classroom": str(new.id)}, token=admin
    )
    assert data(moved)["moveStudent"]["classroom"] == {"id": str(new.id)}
    await run_jobs(factory.settings)  # the statistics refresh the move queued
    old_now = data(await gql(client, CLASS, {"id": str(old.id)}, token=admin))
    new_now = data(await gql(client, CLASS, {"id": str(new.id)}, token=admin))
    assert old_now["classStatistics"]["totalStudents"] == 1
    assert old_now["classRankings"]["totalCount"] == 1
    assert new_now["classStatistics"]["totalStudents"] == 3
    ranked = [edge["node"]["studentId"] for edge in new_now["classRankings"]["edges"]]
    assert ranked[-1] == str(student.id)  # their absence still counts, now in the new class
    week = data(
        await gql(
            client, RECORDS, {"student": str(student.id), "week": monday.isoformat()}, token=admin
        )
    )
    (record,) = [r for day in week["weeklyAttendance"]["days"] for r in day["records"]]
    assert record == {"classroomId": str(old.id), "status": "ABSENT"}
    async with factory.session_factory() as session:
        kept = await session.scalar(
            select(AttendanceRecord.classroom_id).where(AttendanceRecord.student_id == student.id)
        )
    assert kept == old.id
    new_teacher = school.token(school.teachers[1])
    old_teacher = school.token(school.teachers[0])
    dashboard = "query($s: ID) { studentDashboard(studentId: $s) { classSize } }"
    seen = await gql(client, dashboard, {"s": str(student.id)}, token=new_teacher)
    assert data(seen)["studentDashboard"]["classSize"] == 3
    refused = await gql(client, dashboard, {"s": str(student.id)}, token=old_teacher)
    assert error_codes(refused) == ["FORBIDDEN"]
    assert await audit_actions(factory, school) == [AuditAction.STUDENT_MOVE]


async def test_assigning_a_new_teacher_creates_their_account(client, factory, school):
    admin = school.token(school.admin)
    room = school.classrooms[1]
    variables = {"classroom": str(room.id), "email": "Rustam@School.Test"}
    for _ in range(2):  # the second time changes nothing
        body = data(await gql(client, ASSIGN, variables, token=admin))
        emails = [t["email"] for t in body["assignTeacher"]["teachers"]]
        assert emails == ["rustam@school.test", "teacher1@school.test"]
    async with factory.session_factory() as session:
        teacher = await session.scalar(
            select(User).where(
                User.tenant_id == school.tenant.id, User.email == "rustam@school.test"
            )
        )
    assert (teacher.role, teacher.password_hash) == (Role.TEACHER, None)
    mine = "{ me { classrooms { edges { node { name } } } } }"
    listed = data(await gql(client, mine, token=factory.issue(teacher)))
    assert listed["me"]["classrooms"]["edges"] == [{"node": {"name": room.name}}]
    student_email = school.accounts[school.students[0].id].email
    refused = await gql(
        client, ASSIGN, {"classroom": str(room.id), "email": student_email}, token=admin
    )
    assert field_of(refused) == "email"


async def test_new_thresholds_change_a_cached_standing_at_once_and_alert(client, factory, school):
    student = school.students[0]
    token = school.student_token(student)
    monday = date.today() - timedelta(days=date.today().weekday() + 7)
    marks = [(monday, period, AttendanceStatus.PRESENT) for period in range(1, 5)]
    await factory.records(school, student, [*marks, (monday, 5, AttendanceStatus.ABSENT)])
    assert data(await gql(client, STANDING, token=token))["studentDashboard"] == {
        "attendanceRate": 80.0,
        "standing": "OK",
    }
    new = {"mahroomAtOrBelow": 70, "warningBelow": 85.5, "tasdiqBelow": 90}
    body = await gql(client, UPDATE_THRESHOLDS, {"input": new}, token=school.token(school.admin))
    assert data(body)["updateAttendanceThresholds"] == {
        "mahroomAtOrBelow": 70.0,
        "warningBelow": 85.5,
        "tasdiqBelow": 90.0,
    }
    assert data(await gql(client, STANDING, token=token))["studentDashboard"]["standing"] == (
        "WARNING"
    )
    assert data(await gql(client, THRESHOLDS, token=token))["attendanceThresholds"] == {
        "mahroomAtOrBelow": 70.0,
        "warningBelow": 85.5,
        "tasdiqBelow": 90.0,
    }
    await run_jobs(factory.settings)  # the alert checks the change queued
    async with factory.session_factory() as session:
        alerts = list(
            await session.scalars(
                select(Notification.type).where(
                    Notification.user_id == school.accounts[student.id].id
                )
            )
        )
    assert alerts == [NotificationType.ATTENDANCE_WARNING]
    assert await audit_actions(factory, school) == [
        AuditAction.THRESHOLDS_UPDATE,
        AuditAction.NOTIFICATION_SENT,
    ]


finite = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.integers(-5, 105)


@settings(max_examples=60)
@given(mahroom=finite, warning=finite, tasdiq=finite)
async def test_thresholds_are_kept_only_in_order(client, factory, mahroom, warning, tasdiq):
    school = await factory.school(classrooms=1, students=0)
    new = {"mahroomAtOrBelow": mahroom, "warningBelow": warning, "tasdiqBelow": tasdiq}
    if not all(math.isfinite(value) for value in new.values()):
        return  # JSON has no NaN or infinity: the client cannot send them
    body = await gql(client, UPDATE_THRESHOLDS, {"input": new}, token=school.token(school.admin))
    kept = [round(value, 2) for value in (mahroom, warning, tasdiq)]
    # Out of 0..100 is refused before rounding; the order is judged on what is kept.
    in_order = (
        all(0 <= v <= 100 for v in (mahroom, warning, tasdiq)) and kept[0] < kept[1] <= kept[2]
    )
    async with factory.session_factory() as session:
        tenant = await session.get(Tenant, school.tenant.id, populate_existing=True)
    stored = [float(tenant.mahroom_threshold), float(tenant.warning_threshold)]
    stored.append(float(tenant.tasdiq_threshold))
    if in_order:
        assert "errors" not in body, body
        assert stored == pytest.approx(kept, abs=0.006)
    else:
        assert field_of(body).startswith("input.")
        assert stored == [75, 80, 85]


CLASSROOM = "query Classroom($id: ID!) { classroom(id: $id) { id name } }"
CLASSROOMS = "query Classrooms { classrooms { edges { node { id name } } } }"


async def holdings(factory, school) -> tuple:
    """Everything of ``school`` an administration mutation could change."""
    async with factory.session_factory() as session:
        tenant = school.tenant.id
        rooms = await session.execute(
            select(Classroom.id, Classroom.name).where(Classroom.tenant_id == tenant)
        )
        students = await session.execute(
            select(Student.id, Student.classroom_id, Student.name).where(
                Student.tenant_id == tenant
            )
        )
        taught = await session.execute(
            select(TeacherAssignment.teacher_id, TeacherAssignment.classroom_id).where(
                TeacherAssignment.tenant_id == tenant
            )
        )
        users = await session.execute(select(User.id, User.email).where(User.tenant_id == tenant))
        limits = await session.get(Tenant, tenant, populate_existing=True)
        return (
            sorted(map(tuple, rooms)),
            sorted(map(tuple, students)),
            sorted(map(tuple, taught)),
            sorted(map(tuple, users)),
            (limits.mahroom_threshold, limits.warning_threshold, limits.tasdiq_threshold),
        )


@pytest.fixture
async def two_schools(factory):
    return await factory.school(classrooms=2, students=2), await factory.school(
        classrooms=2, students=2
    )


@settings(max_examples=40)
@given(
    viewer=st.sampled_from(["admin", "teacher", "student"]),
    operation=st.sampled_from(["read", "list", "student", "move", "assign", "classroom"]),
    own_target=st.booleans(),
    pick=st.integers(0, 1),
)
async def test_random_viewers_never_see_or_change_another_schools_classes(
    client, factory, two_schools, viewer, operation, own_target, pick
):
    mine, theirs = two_schools
    token = {
        "admin": mine.token(mine.admin),
        "teacher": mine.token(mine.teachers[0]),
        "student": mine.student_token(mine.students[0]),
    }[viewer]
    target = mine if own_target else theirs
    room = str(target.classrooms[pick].id)
    student = str(target.students[pick].id)
    unique = uuid.uuid4().hex[:8]
    query, variables = {
        "read": (CLASSROOM, {"id": room}),
        "list": (CLASSROOMS, {}),
        "student": (
            CREATE_STUDENT,
            {"input": {"name": "N", "email": f"{unique}@school.test", "classroomId": room}},
        ),
        "move": (MOVE, {"student": student, "classroom": room}),
        "assign": (ASSIGN, {"classroom": room, "email": f"t{unique}@school.test"}),
        "classroom": (CREATE_CLASSROOM, {"input": {"name": f"Room {unique}"}}),
    }[operation]
    before = await holdings(factory, theirs)
    body = await gql(client, query, variables, token=token)
    assert await holdings(factory, theirs) == before
    foreign = {str(c.id) for c in theirs.classrooms} | {str(s.id) for s in theirs.students}
    assert not foreign & set(re.findall(r"[0-9a-f-]{36}", str(body.get("data"))))
    if operation in {"student", "move", "assign", "classroom"} and viewer != "admin":
        assert error_codes(body) == ["FORBIDDEN"]
    elif not own_target and operation != "list" and operation != "classroom":
        assert body.get("data") in (None, {"classroom": None}), body
        assert error_codes(body) in ([], ["NOT_FOUND"]), body


async def test_a_teachers_classes_are_cached_and_follow_a_new_assignment(client, factory, school):
    teacher = school.teachers[0]
    token = school.token(teacher)
    other = str(school.classrooms[1].id)
    statistics = "query S($id: ID!) { classStatistics(classroomId: $id) { totalStudents } }"
    assert error_codes(await gql(client, statistics, {"id": other}, token=token)) == ["FORBIDDEN"]
    with counted_statements() as statements:
        again = await gql(client, statistics, {"id": other}, token=token)
    assert error_codes(again) == ["FORBIDDEN"]
    assert not [s for s in statements if "teacher_assignments" in s]  # from the cache
    assign = {"classroom": other, "email": teacher.email}
    assert "errors" not in await gql(client, ASSIGN, assign, token=school.token(school.admin))
    allowed = await gql(client, statistics, {"id": other}, token=token)
    assert data(allowed)["classStatistics"]["totalStudents"] == 2
