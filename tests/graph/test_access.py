"""Nobody reads what they may not: FORBIDDEN or NOT_FOUND, never data (random viewers)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import School, error_codes, gql

OPERATIONS = {
    "dashboard": (
        "query Q($id: ID!) { studentDashboard(studentId: $id) { attendanceRate } }",
        "student",
    ),
    "weekly": (
        'query Q($id: ID!) { weeklyAttendance(studentId: $id, weekStart: "2026-01-05") { attendanceRate } }',
        "student",
    ),
    "ranking": ("query Q($id: ID!) { studentRanking(studentId: $id) { rank } }", "student"),
    "statistics": (
        "query Q($id: ID!) { classStatistics(classroomId: $id) { averageAttendance } }",
        "classroom",
    ),
    "rankings": (
        "query Q($id: ID!) { classRankings(classroomId: $id) { totalCount } }",
        "classroom",
    ),
    "classroom": (
        "query Q($id: ID!) { classroom(id: $id) { name students { totalCount } } }",
        "classroom",
    ),
}


@dataclass
class World:
    schools: list[School]


@pytest.fixture(scope="module")
async def world(factory) -> World:
    # two tenants, each: two classrooms of two students; teacher 0 teaches class 0, teacher 1 class 1
    return World(
        schools=[await factory.school(classrooms=2, students=2, teachers=2) for _ in range(2)]
    )


def allowed(
    viewer_kind: str,
    viewer_school: int,
    viewer_index: int,
    target_school: int,
    target,
    operation: str,
    school: School,
) -> str:
    """'data', 'FORBIDDEN' or 'NOT_FOUND' by the access rules."""
    if viewer_school != target_school:
        return "NOT_FOUND"
    classroom_id = target.classroom_id if hasattr(target, "classroom_id") else target.id
    if viewer_kind == "admin":
        return "data"
    if viewer_kind == "teacher":
        return "data" if school.classrooms[viewer_index].id == classroom_id else "FORBIDDEN"
    own = school.students[viewer_index]
    if OPERATIONS[operation][1] == "student":
        return "data" if own.id == target.id else "FORBIDDEN"
    if operation == "rankings":
        return "FORBIDDEN"
    return "data" if own.classroom_id == classroom_id else "FORBIDDEN"


@pytest.mark.asyncio
@settings(max_examples=150)
@given(
    viewer=st.tuples(
        st.sampled_from(["admin", "teacher", "student"]), st.integers(0, 1), st.integers(0, 3)
    ),
    target=st.tuples(st.integers(0, 1), st.integers(0, 3)),
    operation=st.sampled_from(sorted(OPERATIONS)),
)
async def test_viewers_read_only_what_they_may(client, world, viewer, target, operation):
    kind, viewer_school, viewer_index = viewer
    target_school, target_index = target
    school = world.schools[viewer_school]
    if kind == "admin":
        token = school.token(school.admin)
    elif kind == "teacher":
        viewer_index %= 2
        token = school.token(school.teachers[viewer_index])
    else:
        token = school.student_token(school.students[viewer_index])
    student = world.schools[target_school].students[target_index]
    subject = (
        student
        if OPERATIONS[operation][1] == "student"
        else next(
            room
            for room in world.schools[target_school].classrooms
            if room.id == student.classroom_id
        )
    )
    query, _ = OPERATIONS[operation]
    # when
    body = await gql(client, query, {"id": str(subject.id)}, token=token)
    # then
    outcome = allowed(kind, viewer_school, viewer_index, target_school, subject, operation, school)
    if outcome == "data":
        assert "errors" not in body, body
        assert body["data"] is not None
    elif operation == "classroom" and outcome == "NOT_FOUND":
        # an unknown id in your tenant reads as null, like any missing classroom
        assert body["data"]["classroom"] is None and "errors" not in body
    else:
        # a nullable root field answers null beside the error; either way no data
        assert body["data"] in (None, {"classroom": None}), body
        assert error_codes(body) == [outcome]


async def test_anonymous_callers_are_unauthenticated(client, world):
    student = world.schools[0].students[0]
    for query, kind in OPERATIONS.values():
        subject = student.id if kind == "student" else student.classroom_id
        body = await gql(client, query, {"id": str(subject)})
        assert body["data"] in (None, {"classroom": None})
        assert error_codes(body) == ["UNAUTHENTICATED"]
