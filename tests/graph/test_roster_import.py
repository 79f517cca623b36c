"""``importRoster`` end to end: a multipart upload, the arq job, the ``RosterImport`` it
updates; bad rows reported by line and column while the good ones import; idempotent; a dry
run writes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from services.models import AuditAction, AuditLog, Classroom, Student, TeacherAssignment, User
from tests.factories import School, error_codes, gql, run_jobs

IMPORT = """mutation ImportRoster($file: Upload!, $dryRun: Boolean) {
  importRoster(file: $file, dryRun: $dryRun) { id status dryRun fileName }
}"""
PROGRESS = """query RosterImport($id: ID!) {
  rosterImport(id: $id) {
    id status dryRun totalRows processedRows created updated unchanged
    errors { line column message }
  }
}"""
ROSTER = "\n".join(
    [
        "classroom,student_name,student_email,teacher_email",
        "Class 0,Aziza Karimova,aziza@school.test,",
        "Class 0,Bekzod Tursunov,bekzod@school.test,",
        "10-Z,Charos Aliyeva,charos@school.test,zafar@school.test",
        "10-Z,Doston Rahimov,not-an-email,",
        "10-Z,Eldor Nazarov,eldor@school.test,zafar@school.test",
        "10-Z,Farida Yusupova,farida@school.test,",
        "",
    ]
).encode()


async def upload(
    client: httpx.AsyncClient,
    token: str,
    content: bytes,
    *,
    dry_run: bool = False,
    name: str = "roster.csv",
) -> dict[str, Any]:
    operations = {"query": IMPORT, "variables": {"file": None, "dryRun": dry_run}}
    response = await client.post(
        "/graphql",
        data={
            "operations": orjson.dumps(operations).decode(),
            "map": orjson.dumps({"0": ["variables.file"]}).decode(),
        },
        files={"0": (name, content, "text/csv")},
        headers={"apollo-require-preflight": "true", "authorization": f"Bearer {token}"},
    )
    body: dict[str, Any] = response.json()
    return body


async def imported(client, factory, school: School, content: bytes, **options) -> dict[str, Any]:
    """Upload, run the job, and the import as it ended."""
    token = school.token(school.admin)
    body = await upload(client, token, content, **options)
    assert "errors" not in body, body
    started = body["data"]["importRoster"]
    assert started["status"] == "PENDING"
    await run_jobs(factory.settings)
    done = await gql(client, PROGRESS, {"id": started["id"]}, token=token)
    assert "errors" not in done, done
    result: dict[str, Any] = done["data"]["rosterImport"]
    return result


async def census(factory, school: School) -> dict[str, Any]:
    """What the school holds: students by classroom, accounts by email, teaching pairs."""
    async with factory.session_factory() as session:
        students = await session.execute(
            select(Classroom.name, Student.name, User.email)
            .join(Student, Student.classroom_id == Classroom.id)
            .join(User, User.id == Student.user_id)
            .where(Classroom.tenant_id == school.tenant.id)
        )
        teaching = await session.execute(
            select(User.email, Classroom.name)
            .join(TeacherAssignment, TeacherAssignment.teacher_id == User.id)
            .join(Classroom, Classroom.id == TeacherAssignment.classroom_id)
            .where(User.tenant_id == school.tenant.id)
        )
        accounts = await session.execute(
            select(User.email, User.role, User.password_hash.is_(None)).where(
                User.tenant_id == school.tenant.id
            )
        )
        classrooms = await session.scalars(
            select(Classroom.name).where(Classroom.tenant_id == school.tenant.id)
        )
        return {
            "students": sorted(map(tuple, students)),
            "teaching": sorted(map(tuple, teaching)),
            "accounts": sorted(map(tuple, accounts)),
            "classrooms": sorted(classrooms),
        }


@pytest.fixture
async def school(factory):
    return await factory.school(classrooms=1, students=1)


async def test_good_rows_import_bad_ones_are_reported_and_a_second_run_changes_nothing(
    client, factory, school
):
    first = await imported(client, factory, school, ROSTER)
    assert first["status"] == "SUCCEEDED"
    assert (first["totalRows"], first["processedRows"]) == (6, 5)
    assert (first["created"], first["updated"], first["unchanged"]) == (5, 0, 0)
    assert first["errors"] == [
        {
            "line": 5,
            "column": "student_email",
            "message": "'not-an-email' is not a valid email address: An email address must have "
            "an @-sign.",
        }
    ]
    after_first = await census(factory, school)
    assert after_first["classrooms"] == ["10-Z", "Class 0"]
    roster = [s for s in after_first["students"] if s[2] != "class0-0@school.test"]
    assert roster == [
        ("10-Z", "Charos Aliyeva", "charos@school.test"),
        ("10-Z", "Eldor Nazarov", "eldor@school.test"),
        ("10-Z", "Farida Yusupova", "farida@school.test"),
        ("Class 0", "Aziza Karimova", "aziza@school.test"),
        ("Class 0", "Bekzod Tursunov", "bekzod@school.test"),
    ]
    assert ("zafar@school.test", "10-Z") in after_first["teaching"]
    new_accounts = {email: no_password for email, _, no_password in after_first["accounts"]}
    assert new_accounts["zafar@school.test"] and new_accounts["aziza@school.test"]

    second = await imported(client, factory, school, ROSTER)
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 5)
    assert second["errors"] == first["errors"]
    assert await census(factory, school) == after_first


async def test_a_dry_run_counts_what_a_run_would_do_and_writes_nothing(client, factory, school):
    before = await census(factory, school)
    dry = await imported(client, factory, school, ROSTER, dry_run=True)
    assert dry["dryRun"] is True
    assert await census(factory, school) == before
    real = await imported(client, factory, school, ROSTER)
    keys = ("status", "totalRows", "processedRows", "created", "updated", "unchanged", "errors")
    assert {key: dry[key] for key in keys} == {key: real[key] for key in keys}


async def test_a_row_moves_or_renames_the_student_its_email_names(client, factory, school):
    await imported(client, factory, school, ROSTER)
    changed = "\n".join(
        [
            "student_email,classroom,student_name",  # columns in any order
            "aziza@school.test,10-Z,Aziza Karimova",  # moved
            "bekzod@school.test,Class 0,Bekzod Tursunov-Ali",  # renamed
            "charos@school.test,10-Z,Charos Aliyeva",  # as it was
        ]
    ).encode()
    result = await imported(client, factory, school, changed)
    assert (result["created"], result["updated"], result["unchanged"]) == (0, 2, 1)
    students = (await census(factory, school))["students"]
    assert ("10-Z", "Aziza Karimova", "aziza@school.test") in students
    assert ("Class 0", "Bekzod Tursunov-Ali", "bekzod@school.test") in students


async def test_every_kind_of_bad_row_is_reported_by_line_and_column(client, factory, school):
    teacher_email = school.teachers[0].email
    lines = [
        b"classroom,student_name,student_email,teacher_email",
        b"Class 0,Good One,good1@school.test,",
        b"Class 0,Missing Email",
        f"Class 0,Staff,{teacher_email},".encode(),
        b"Class 0,Good Two,good2@school.test,",
        b"Class 0,Twice,good1@school.test,",
        b"Class 0,Caf\xe9 Latin1,cafe@school.test,",
        b"Class 0,Too,many,fields,here",
        b",No Class,noclass@school.test,",
        b"Class 0,Teaches Self,self@school.test,self@school.test",
        b"Class 0,Bad Teacher,ok3@school.test,good2@school.test",
    ]
    result = await imported(client, factory, school, b"\r\n".join(lines) + b"\r\n")
    assert result["status"] == "SUCCEEDED"
    assert result["created"] == 2
    assert [(e["line"], e["column"]) for e in result["errors"]] == [
        (3, "student_email"),
        (4, "student_email"),
        (6, "student_email"),
        (7, "student_name"),
        (8, None),
        (9, "classroom"),
        (10, "teacher_email"),
        (11, "teacher_email"),
    ]
    messages = {e["line"]: e["message"] for e in result["errors"]}
    assert "teacher's account" in messages[4]
    assert "already on line 2" in messages[6]
    assert "not UTF-8" in messages[7]
    assert "student's account" in messages[11]


async def test_a_header_without_the_columns_fails_the_import(client, factory, school):
    before = await census(factory, school)
    result = await imported(client, factory, school, b"name,email\nA,a@school.test\n")
    assert result["status"] == "FAILED"
    assert result["errors"] == [
        {
            "line": 1,
            "column": "classroom",
            "message": "The header has no classroom column; it must read "
            "classroom,student_name,student_email[,teacher_email].",
        }
    ]
    assert await census(factory, school) == before


async def test_rows_past_ten_thousand_are_reported_and_not_read(client, factory, school):
    rows = [f"Class 0,Student {n},s{n}@school.test" for n in range(10_002)]
    content = "\n".join(["classroom,student_name,student_email", *rows]).encode()
    result = await imported(client, factory, school, content)
    assert (result["totalRows"], result["created"]) == (10_000, 10_000)
    (error,) = result["errors"]
    assert error["line"] == 10_002
    assert "at most 10,000 rows" in error["message"]


async def test_only_admins_import_and_read_imports_of_their_own_school(client, factory, school):
    for token in (school.token(school.teachers[0]), school.student_token(school.students[0])):
        assert error_codes(await upload(client, token, ROSTER)) == ["FORBIDDEN"]
    started = await upload(client, school.token(school.admin), ROSTER)
    import_id = started["data"]["importRoster"]["id"]
    other = await factory.school()
    body = await gql(client, PROGRESS, {"id": import_id}, token=other.token(other.admin))
    assert body == {"data": {"rosterImport": None}}
    teacher = await gql(client, PROGRESS, {"id": import_id}, token=school.token(school.teachers[0]))
    assert error_codes(teacher) == ["FORBIDDEN"]
    unknown = await gql(
        client, PROGRESS, {"id": str(uuid.uuid4())}, token=school.token(school.admin)
    )
    assert unknown == {"data": {"rosterImport": None}}
    audited = await factory.count(
        AuditLog,
        AuditLog.tenant_id == school.tenant.id,
        AuditLog.action == AuditAction.ROSTER_IMPORT,
    )
    assert audited == 1


async def test_a_hostile_file_name_is_cleaned_not_stored(client, factory, school):
    # Written by hand: httpx would percent-encode the NUL and the bell.
    operations = orjson.dumps({"query": IMPORT, "variables": {"file": None}})
    parts = [
        b'Content-Disposition: form-data; name="operations"\r\n\r\n' + operations,
        b'Content-Disposition: form-data; name="map"\r\n\r\n{"0": ["variables.file"]}',
        b'Content-Disposition: form-data; name="0"; filename="../\x00ro\x07ster.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + ROSTER,
    ]
    body = b"".join(b"--b0undary\r\n" + part + b"\r\n" for part in parts) + b"--b0undary--\r\n"
    response = await client.post(
        "/graphql",
        content=body,
        headers={
            "content-type": "multipart/form-data; boundary=b0undary",
            "apollo-require-preflight": "true",
            "authorization": f"Bearer {school.token(school.admin)}",
        },
    )
    assert response.json()["data"]["importRoster"]["fileName"] == "roster.csv"
    await run_jobs(factory.settings)


async def test_the_file_must_be_a_multipart_part_and_not_empty(client, school):
    token = school.token(school.admin)
    inline = await gql(client, IMPORT, {"file": "a,b,c"}, token=token)
    assert [e["extensions"].get("field") for e in inline["errors"]] == ["file"]
    empty = await upload(client, token, b"  \n")
    assert [e["extensions"].get("field") for e in empty["errors"]] == ["file"]
