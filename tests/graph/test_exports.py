"""Exports through the GraphQL endpoint: request, build job, file content, rights, limits."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from sqlalchemy import delete, func, select, update

from jobs.exports import expire_old_exports
from jobs.worker import shared_context
from services.access import Access
from services.audit import Origin
from services.auth import Viewer
from services.export_files import COLUMNS
from services.exports import ExportRequest, request_export
from services.models import (
    AttendanceStatus,
    AuditAction,
    AuditLog,
    DeadLetter,
    Export,
    ExportFormat,
    ExportStatus,
    Notification,
    NotificationType,
    OutboxJob,
    Student,
    TeacherAssignment,
    User,
)
from services.platform.settings import RateLimit
from services.platform.storage import create_store
from services.queue import BUILD_EXPORT, Queue, drain_outbox
from tests.factories import Factory, School, api_process, error_codes, follow_link, gql, run_jobs

FIELDS = "id format from to status rowCount size error createdAt completedAt downloadUrl"
REQUEST = f"""
mutation Request($input: ExportInput!) {{ requestExport(input: $input) {{ {FIELDS} }} }}"""
EXPORT = f"query One($id: ID!) {{ export(id: $id) {{ {FIELDS} }} }}"
EXPORTS = """
query List($first: Int, $after: String) {
  exports(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { id status } }
  }
}"""
NOTIFICATIONS = "{ notifications { edges { node { type title message actionUrl } } } }"
DAY = date(2026, 10, 5)
RANGE = {"from": "2026-10-05", "to": "2026-10-09"}
README = Path(__file__).resolve().parents[2] / "README.md"


async def requested(
    client: httpx.AsyncClient, token: str, export_format: str = "CSV", **dates: str
) -> dict[str, Any]:
    body = await gql(
        client, REQUEST, {"input": {"format": export_format, **RANGE, **dates}}, token=token
    )
    assert "errors" not in body, body
    return body["data"]["requestExport"]


async def built(settings, client: httpx.AsyncClient, token: str, export_id: str) -> dict[str, Any]:
    await run_jobs(settings)
    body = await gql(client, EXPORT, {"id": export_id}, token=token)
    return body["data"]["export"]


def parsed(response: httpx.Response) -> list[dict[str, str]]:
    """The file's rows as strings, whichever the format."""
    if response.headers["content-type"].startswith("text/csv"):
        reader = csv.reader(io.StringIO(response.content.decode("utf-8"), newline=""))
        header, *rows = list(reader)
        assert header == list(COLUMNS)
        return [dict(zip(header, row, strict=True)) for row in rows]
    assert response.headers["content-type"].startswith("application/json")
    items = json.loads(response.content)
    assert all(list(item) == list(COLUMNS) for item in items)
    return [{name: str(value) for name, value in item.items()} for item in items]


async def downloaded(client: httpx.AsyncClient, url: str) -> list[dict[str, str]]:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    return parsed(response)


async def exported(settings, client, token, export_format="CSV") -> list[dict[str, str]]:
    export = await requested(client, token, export_format)
    ready = await built(settings, client, token, export["id"])
    assert ready["status"] == "READY", ready
    return await downloaded(client, ready["downloadUrl"])


async def marked_school(factory: Factory, **shape: Any) -> School:
    """A school (``factory.school(**shape)``) whose every student has two periods marked on
    each day of RANGE, and one mark on each side of it."""
    school = await factory.school(**shape)
    statuses = [AttendanceStatus.PRESENT, AttendanceStatus.ABSENT, AttendanceStatus.SICK]
    for n, student in enumerate(school.students):
        marks = [
            (DAY + timedelta(days=day), period, statuses[(n + day + period) % 3])
            for day in range(5)
            for period in (1, 2)
        ]
        marks += [
            (DAY - timedelta(days=1), 1, AttendanceStatus.PRESENT),
            (DAY + timedelta(days=5), 1, AttendanceStatus.PRESENT),
        ]
        await factory.records(school, student, marks)
    return school


async def rows_of(factory: Factory, model: type, **where: Any) -> list[Any]:
    async with factory.session_factory() as session:
        query = select(model).where(*(getattr(model, k) == v for k, v in where.items()))
        return list(await session.scalars(query))


def test_the_files_columns_are_the_ones_the_readme_promises():
    # The tests below check every file against COLUMNS; whoever reads the files goes by these.
    [written] = re.findall(r"Columns `([^`]*)`", README.read_text())
    assert [name.strip() for name in written.split(",")] == list(COLUMNS)


@pytest.mark.parametrize("export_format", ["CSV", "JSON"])
async def test_a_student_exports_their_own_marks_audited_and_notified_with_a_link(
    client, factory, settings, redis, export_format
):
    # given two classes of marked students
    school = await marked_school(factory, classrooms=2, students=2)
    student = school.students[0]
    token = school.student_token(student)
    # when the student asks
    export = await requested(client, token, export_format)
    # then a PENDING export, audited in the same transaction (property 21)
    assert export["status"] == "PENDING" and export["downloadUrl"] is None
    assert (export["format"], export["from"], export["to"]) == (
        export_format,
        RANGE["from"],
        RANGE["to"],
    )
    [entry] = await rows_of(factory, AuditLog, tenant_id=school.tenant.id)
    assert entry.action is AuditAction.DATA_EXPORT
    assert entry.user_id == school.accounts[student.id].id
    assert entry.resource_id == export["id"]
    assert entry.ip_address is not None and entry.timestamp is not None
    assert entry.details["format"] == export_format
    assert (entry.details["from"], entry.details["to"]) == (RANGE["from"], RANGE["to"])
    # built: only their own ten marks of the range, every column filled
    ready = await built(settings, client, token, export["id"])
    assert ready["status"] == "READY" and ready["rowCount"] == 10 and ready["size"] > 0
    assert ready["completedAt"] and ready["error"] is None
    assert int(httpx.URL(ready["downloadUrl"]).params["expires"]) > 0
    rows = await downloaded(client, ready["downloadUrl"])
    assert len(rows) == 10
    assert {row["studentId"] for row in rows} == {str(student.id)}
    assert {row["studentName"] for row in rows} == {student.name}
    assert {row["classroom"] for row in rows} == {"Class 0"}
    assert {row["subject"] for row in rows} == {"Subject 0"}
    assert {row["date"] for row in rows} == {str(DAY + timedelta(days=d)) for d in range(5)}
    assert [(row["date"], row["period"]) for row in rows] == sorted(
        (row["date"], row["period"]) for row in rows
    )
    assert {row["status"] for row in rows} <= {"PRESENT", "ABSENT", "SICK"}
    assert all(row["markedAt"] for row in rows)
    # the notification's link downloads the same file
    notes = (await gql(client, NOTIFICATIONS, token=token))["data"]["notifications"]["edges"]
    [note] = [edge["node"] for edge in notes]
    assert note["type"] == "EXPORT_READY" and "10 rows" in note["message"]
    assert await downloaded(client, note["actionUrl"]) == rows


async def test_a_teacher_exports_their_classes_and_staff_the_school_never_another(
    client, factory, settings, redis
):
    # given two marked schools, the first with two classes taught by different teachers
    school = await marked_school(factory, classrooms=2, students=2, teachers=2)
    other = await marked_school(factory, classrooms=1, students=2)
    first_class = {str(s.id) for s in school.students_of(school.classrooms[0])}
    everyone = {str(s.id) for s in school.students}
    # when and then: the teacher of the first class gets it only
    teacher = await exported(settings, client, school.token(school.teachers[0]))
    assert {row["studentId"] for row in teacher} == first_class
    assert len(teacher) == 2 * 10
    # the admin and a partner system get the whole school, and nothing of the other one
    await factory.trust(REQUEST, EXPORT)  # partners run registered documents only
    for token in (school.token(school.admin), await factory.partner(school)):
        rows = await exported(settings, client, token, "JSON")
        assert {row["studentId"] for row in rows} == everyone
        assert len(rows) == 4 * 10
    # the other school's admin, likewise
    rows = await exported(settings, client, other.token(other.admin))
    assert {row["studentId"] for row in rows} == {str(s.id) for s in other.students}


async def test_an_invalid_range_is_refused_and_nothing_is_written_or_queued(client, factory, redis):
    school = await factory.school(students=1)
    token = school.token(school.admin)
    for dates in (
        {"from": "2026-10-09", "to": "2026-10-05"},
        {"from": "2025-10-01", "to": "2026-10-02"},
    ):
        body = await gql(client, REQUEST, {"input": {"format": "CSV", **dates}}, token=token)
        assert error_codes(body) == ["VALIDATION_ERROR"], dates
        assert body["errors"][0]["extensions"]["field"] == "input.to"
    assert await rows_of(factory, Export, tenant_id=school.tenant.id) == []
    assert await rows_of(factory, AuditLog, tenant_id=school.tenant.id) == []
    assert await redis.zcard(Queue.NORMAL.value) == 0


async def test_the_sixth_export_in_an_hour_is_refused(settings, factory, redis):
    # given the design's limit, and a refused range that does not count
    limited = dataclasses.replace(
        settings, rate_limits_enabled=True, rate_limits={"export": RateLimit(5, 3600)}
    )
    school = await factory.school(students=1)
    token = school.token(school.admin)
    async with api_process(limited) as http:
        backwards = {"format": "CSV", "from": "2026-10-09", "to": "2026-10-05"}
        body = await gql(http, REQUEST, {"input": backwards}, token=token)
        assert error_codes(body) == ["VALIDATION_ERROR"]
        # when five are asked for, three of them as aliases of one operation
        aliased = (
            "mutation { "
            + " ".join(
                f'e{n}: requestExport(input: {{format: CSV, from: "2026-10-05", '
                f'to: "2026-10-09"}}) {{ id }}'
                for n in range(3)
            )
            + " }"
        )
        body = await gql(http, aliased, token=token)
        assert "errors" not in body, body
        for _ in range(2):
            await requested(http, token)
        # then the sixth is refused whole
        refused = await http.post(
            "/graphql",
            json={"query": REQUEST, "variables": {"input": {"format": "JSON", **RANGE}}},
            headers={"authorization": f"Bearer {token}"},
        )
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert error["extensions"]["retryAfter"] > 0
    entries = await rows_of(factory, AuditLog, tenant_id=school.tenant.id)
    actions = sorted(entry.action for entry in entries)
    assert actions == sorted([AuditAction.DATA_EXPORT] * 5 + [AuditAction.RATE_LIMIT_EXCEEDED])
    assert len(await rows_of(factory, Export, tenant_id=school.tenant.id)) == 5


async def test_a_rerun_job_never_notifies_twice(client, factory, settings, redis):
    # given a built export
    school = await marked_school(factory, students=1)
    token = school.token(school.admin)
    export = await requested(client, token)
    first = await built(settings, client, token, export["id"])
    assert first["status"] == "READY"
    arq = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        # when the job runs again: once as is, once as if it had stopped before its commit
        args = (str(school.tenant.id), export["id"])
        await arq.enqueue_job(BUILD_EXPORT, *args, _queue_name=Queue.NORMAL.value)
        await run_jobs(settings)
        async with factory.session_factory() as session, session.begin():
            await session.execute(
                update(Export)
                .where(Export.id == uuid.UUID(export["id"]))
                .values(status=ExportStatus.RUNNING)
            )
        await arq.enqueue_job(BUILD_EXPORT, *args, _queue_name=Queue.NORMAL.value)
        again = await built(settings, client, token, export["id"])
    finally:
        await arq.aclose()
    # then the same file, still READY, and one notification
    assert again["status"] == "READY" and again["rowCount"] == first["rowCount"] == 10
    assert await downloaded(client, again["downloadUrl"]) == await downloaded(
        client, first["downloadUrl"]
    )
    notes = await rows_of(factory, Notification, user_id=school.admin.id)
    assert [n.type for n in notes] == [NotificationType.EXPORT_READY]


async def test_a_job_failing_every_try_leaves_the_export_failed(
    client, factory, settings, redis, tmp_path
):
    # given a store the worker cannot write to
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    broken = dataclasses.replace(settings, storage_url=f"file://{blocker}/storage")
    school = await marked_school(factory, students=1)
    token = school.token(school.admin)
    export = await requested(client, token)
    # when every try fails
    failed = await built(broken, client, token, export["id"])
    # then FAILED, with a message the user may read, dead-lettered, and nobody told it's ready
    assert failed["status"] == "FAILED"
    assert failed["error"] and failed["downloadUrl"] is None and failed["completedAt"]
    [letter] = await rows_of(factory, DeadLetter, job_id=f"{BUILD_EXPORT}:{export['id']}")
    assert letter.tries == 3 and "StorageUnavailable" in letter.error
    assert await rows_of(factory, Notification, user_id=school.admin.id) == []
    # a later run leaves it FAILED
    assert (await built(settings, client, token, export["id"]))["status"] == "FAILED"


async def test_each_viewer_follows_only_their_own_exports_newest_first(
    client, factory, settings, redis
):
    school = await factory.school(students=1)
    admin, teacher = school.token(school.admin), school.token(school.teachers[0])
    older = await requested(client, admin)
    newer = await requested(client, admin, "JSON")
    theirs = await requested(client, teacher)
    # pages walk newest first
    page = (await gql(client, EXPORTS, {"first": 1}, token=admin))["data"]["exports"]
    assert page["totalCount"] == 2 and page["pageInfo"]["hasNextPage"]
    assert [edge["node"]["id"] for edge in page["edges"]] == [newer["id"]]
    after = {"first": 1, "after": page["pageInfo"]["endCursor"]}
    rest = (await gql(client, EXPORTS, after, token=admin))["data"]["exports"]
    assert [edge["node"]["id"] for edge in rest["edges"]] == [older["id"]]
    # someone else's export is not there, whoever asks, and has no link for them
    await run_jobs(settings)
    assert (await gql(client, EXPORT, {"id": theirs["id"]}, token=admin))["data"]["export"] is None
    other = await factory.school(students=1)
    body = await gql(client, EXPORT, {"id": older["id"]}, token=other.token(other.admin))
    assert body["data"]["export"] is None
    mine = (await gql(client, EXPORT, {"id": theirs["id"]}, token=teacher))["data"]["export"]
    assert mine["status"] == "READY" and mine["downloadUrl"]


async def test_cells_a_spreadsheet_would_run_are_defused_in_csv_only(
    client, factory, settings, redis
):
    # given a student whose name reads as a formula
    school = await factory.school(students=1)
    student = school.students[0]
    async with factory.session_factory() as session, session.begin():
        await session.execute(
            update(Student).where(Student.id == student.id).values(name="=HYPERLINK(1)")
        )
    await factory.records(school, student, [(DAY, 1, AttendanceStatus.PRESENT)])
    token = school.student_token(student)
    # when exported in both formats
    [in_csv] = await exported(settings, client, token, "CSV")
    [in_json] = await exported(settings, client, token, "JSON")
    # then the spreadsheet sees text; JSON keeps the name as it is
    assert in_csv["studentName"] == "'=HYPERLINK(1)"
    assert in_json["studentName"] == "=HYPERLINK(1)"


async def test_a_request_while_redis_is_down_waits_in_the_outbox(
    factory, settings, session_factory, redis
):
    # given an admin and a Redis that refuses connections
    school = await marked_school(factory, students=1)
    admin = school.admin
    access = Access(
        viewer=Viewer(user_id=admin.id, tenant_id=school.tenant.id, role=admin.role),
        session_factory=session_factory,
    )
    dead = ArqRedis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    # when the export is requested
    try:
        export = await request_export(
            session_factory=session_factory,
            queue=dead,
            access=access,
            request=ExportRequest(
                format=ExportFormat.CSV, date_from=DAY, date_to=DAY + timedelta(days=4)
            ),
            origin=Origin(ip_address="192.0.2.7"),
        )
    finally:
        await dead.aclose()
    # then the export and its audit entry are committed and the job waits in the outbox
    job_id = f"{BUILD_EXPORT}:{export.id}"
    [kept] = await rows_of(factory, OutboxJob, job_id=job_id)
    assert kept.function == BUILD_EXPORT and kept.queue == Queue.NORMAL.value
    [entry] = await rows_of(factory, AuditLog, tenant_id=school.tenant.id)
    assert entry.action is AuditAction.DATA_EXPORT and str(entry.ip_address) == "192.0.2.7"
    # and once Redis is back and the outbox drained, it is built
    arq = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        await drain_outbox(redis=arq, session_factory=session_factory)
    finally:
        await arq.aclose()
    await run_jobs(settings)
    [done] = await rows_of(factory, Export, id=export.id)
    assert done.status is ExportStatus.READY and done.row_count == 10


async def test_rights_are_those_of_the_requester_when_the_file_is_built(
    client, factory, settings, redis
):
    # given a teacher's and an admin's exports, requested before the teacher lost the class
    # and the admin account was deactivated
    school = await marked_school(factory, students=2)
    teacher, admin = school.teachers[0], school.admin
    by_teacher = await requested(client, school.token(teacher))
    by_admin = await requested(client, school.token(admin))
    async with factory.session_factory() as session, session.begin():
        await session.execute(
            delete(TeacherAssignment).where(TeacherAssignment.teacher_id == teacher.id)
        )
        await session.execute(update(User).where(User.id == admin.id).values(active=False))
    # when built
    await run_jobs(settings)
    # then both files are empty
    for export in (by_teacher, by_admin):
        [done] = await rows_of(factory, Export, id=uuid.UUID(export["id"]))
        assert done.status is ExportStatus.READY and done.row_count == 0


async def test_on_s3_the_links_redirect_to_the_file(factory, settings, s3_server, redis):
    # given an API and a worker on real S3
    s3_settings = dataclasses.replace(
        settings, storage_url=s3_server.storage_url(f"exports-{uuid.uuid4().hex[:8]}")
    )
    school = await marked_school(factory, students=1)
    token = school.student_token(school.students[0])
    async with api_process(s3_settings) as http:
        # when an export is built
        export = await requested(http, token, "JSON")
        ready = await built(s3_settings, http, token, export["id"])
        notes = (await gql(http, NOTIFICATIONS, token=token))["data"]["notifications"]["edges"]
        # then both the export's link and the notification's serve it, named and typed
        served = await follow_link(http, ready["downloadUrl"])
        assert served.status_code == 200
        assert (
            'filename="attendance_2026-10-05_2026-10-09.json"'
            in (served.headers["content-disposition"])
        )
        assert len(parsed(served)) == ready["rowCount"] == 10
        from_note = await follow_link(http, notes[0]["node"]["actionUrl"])
        assert from_note.status_code == 200 and from_note.content == served.content


async def test_exports_past_the_retention_time_are_deleted_and_expired(
    client, factory, settings, redis
):
    # given two built exports, one finished eight days ago
    school = await marked_school(factory, students=1)
    token = school.token(school.admin)
    old, recent = (await requested(client, token)), (await requested(client, token))
    await run_jobs(settings)
    old_link = (await gql(client, EXPORT, {"id": old["id"]}, token=token))["data"]["export"][
        "downloadUrl"
    ]
    async with factory.session_factory() as session, session.begin():
        await session.execute(
            update(Export)
            .where(Export.id == uuid.UUID(old["id"]))
            .values(completed_at=func.now() - timedelta(days=8))
        )
    [stored] = await rows_of(factory, Export, id=uuid.UUID(old["id"]))
    store = create_store(settings.storage_url)
    assert await store.exists(stored.object_key)
    # when the expiry job runs (the default retention: 7 days)
    async with shared_context(settings) as ctx:
        assert await expire_old_exports(ctx) == 1
    # then the old one's file is gone, its link dead, and the recent one untouched
    after = (await gql(client, EXPORT, {"id": old["id"]}, token=token))["data"]["export"]
    assert after["status"] == "EXPIRED" and after["downloadUrl"] is None
    assert not await store.exists(stored.object_key)
    assert (await client.get(old_link)).status_code == 404
    kept = (await gql(client, EXPORT, {"id": recent["id"]}, token=token))["data"]["export"]
    assert kept["status"] == "READY"
    assert len(await downloaded(client, kept["downloadUrl"])) == 10
