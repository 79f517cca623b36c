"""Medical certificates through the GraphQL endpoint: upload, scan, review, links, rights."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import time
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from graph.edge.bodies import DRAIN_LIMIT, MAX_MULTIPART_BODY
from rollcall.processes import running_server
from services.certificate_files import MAX_FILE_SIZE
from services.certificates import sweep_orphans
from services.models import (
    AttendanceRecord,
    AttendanceStatus,
    AuditAction,
    AuditLog,
    MedicalCertificate,
    Role,
    Student,
)
from services.platform.storage import ObjectStore, create_store, quarantine_key
from tests import files
from tests.factories import (
    Factory,
    School,
    api_process,
    error_codes,
    follow_link,
    gql,
    process_env,
    run_jobs,
)
from tests.servers import clamd, clamd_binary

FIELDS = """id studentId fileName contentType size status rejectionReason uploadedAt uploadedBy
coversFrom coversTo description reviewedAt reviewedBy excusedRecords downloadUrl
scan { clean threats engine scannedAt }"""
UPLOAD = f"""
mutation Upload($file: Upload!, $input: MedicalCertificateInput!) {{
  uploadMedicalCertificate(file: $file, input: $input) {{ {FIELDS} }}
}}"""
REVIEW = f"""
mutation Review($id: ID!, $decision: ReviewDecision!, $reason: String) {{
  reviewMedicalCertificate(id: $id, decision: $decision, reason: $reason) {{ {FIELDS} }}
}}"""
LIST = f"""
query List($studentId: ID, $status: FileStatus, $first: Int, $after: String) {{
  medicalCertificates(studentId: $studentId, status: $status, first: $first, after: $after) {{
    totalCount pageInfo {{ hasNextPage endCursor }} edges {{ node {{ {FIELDS} }} }}
  }}
}}"""
NOTIFICATIONS = "{ notifications { edges { node { type title message severity } } } }"
DASHBOARD = "query D($id: ID) { studentDashboard(studentId: $id) { sickDays absentDays } }"
DAY = date(2026, 10, 5)
COVER = {"coversFrom": "2026-10-05", "coversTo": "2026-10-07", "description": "Flu"}


async def upload(
    client: httpx.AsyncClient,
    token: str | None,
    content: bytes,
    *,
    name: str = "note.pdf",
    content_type: str = "application/pdf",
    cover: dict[str, Any] = COVER,
    preflight: bool = True,
) -> httpx.Response:
    """A GraphQL multipart request, as Apollo's upload client sends it."""
    operations = {"query": UPLOAD, "variables": {"file": None, "input": cover}}
    headers = {"apollo-require-preflight": "true"} if preflight else {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await client.post(
        "/graphql",
        data={
            "operations": orjson.dumps(operations).decode(),
            "map": orjson.dumps({"0": ["variables.file"]}).decode(),
        },
        files={"0": (name, content, content_type)},
        headers=headers,
    )


async def uploaded(client, token, content=None, **options) -> dict[str, Any]:
    response = await upload(client, token, content or files.pdf(), **options)
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["uploadMedicalCertificate"]


def local_store(settings) -> ObjectStore:
    return create_store(settings.storage_url)


async def stored_keys(store: ObjectStore, school: School) -> list[str]:
    return [
        found.key
        for prefix in (
            f"tenants/{school.tenant.id}/",
            quarantine_key(f"tenants/{school.tenant.id}/"),
        )
        for found in await store.listing(prefix)
    ]


async def rows(factory: Factory, school: School) -> list[MedicalCertificate]:
    async with factory.session_factory() as session:
        return list(
            await session.scalars(
                select(MedicalCertificate).where(MedicalCertificate.tenant_id == school.tenant.id)
            )
        )


async def audit_entries(factory: Factory, school: School) -> list[AuditLog]:
    async with factory.session_factory() as session:
        return list(
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.tenant_id == school.tenant.id)
                .order_by(AuditLog.timestamp)
            )
        )


async def scanned(settings, client, token, certificate_id: str) -> dict[str, Any]:
    await run_jobs(settings)
    body = await gql(client, LIST, token=token)
    return next(
        edge["node"]
        for edge in body["data"]["medicalCertificates"]["edges"]
        if edge["node"]["id"] == certificate_id
    )


@pytest.mark.parametrize(
    ("content", "name", "content_type"),
    [
        (files.pdf(), "sick note.pdf", "application/pdf"),
        (files.png(), "scan.png", "image/png"),
        (files.jpeg(), "photo.jpg", "image/jpeg"),
    ],
)
async def test_a_good_file_is_stored_audited_scanned_and_downloadable(
    client, factory, settings, redis, content, name, content_type
):
    # given
    school = await factory.school(students=1)
    student = school.students[0]
    token = school.student_token(student)
    # when
    certificate = await uploaded(client, token, content, name=name, content_type=content_type)
    # then: stored, PENDING, with a 24 h link for the uploader (property 32)
    assert certificate["status"] == "PENDING"
    assert certificate["fileName"] == name
    assert certificate["size"] == len(content)
    assert certificate["studentId"] == str(student.id)
    assert certificate["coversFrom"] == COVER["coversFrom"]
    link = httpx.URL(certificate["downloadUrl"])
    assert int(link.params["expires"]) == pytest.approx(time.time() + 24 * 3600, abs=60)
    assert (await client.head(certificate["downloadUrl"])).status_code == 200  # not audited
    served = await client.get(certificate["downloadUrl"])
    assert served.status_code == 200 and served.content == content
    assert served.headers["content-type"].startswith(content_type)
    # the upload's audit entry (property 22), then the download's
    entry, download = await audit_entries(factory, school)
    assert (download.action, download.user_id) == (
        AuditAction.FILE_DOWNLOAD,
        school.accounts[student.id].id,
    )
    assert download.details == {"fileName": name, "contentType": content_type}
    assert entry.action is AuditAction.FILE_UPLOAD
    assert entry.user_id == school.accounts[student.id].id
    assert entry.resource_id == certificate["id"]
    assert entry.ip_address is not None
    assert entry.details["fileName"] == name
    assert entry.details["size"] == len(content)
    assert entry.details["contentType"] == content_type
    assert entry.details["status"] == "PENDING"
    assert entry.details["uploadedAt"]
    # queued for scanning (property 31), then clean and awaiting review
    after = await scanned(settings, client, token, certificate["id"])
    assert after["status"] == "AWAITING_REVIEW"
    assert after["scan"]["clean"] is True and after["scan"]["threats"] == []


async def test_eicar_is_quarantined_out_of_reach_and_the_student_told(
    client, factory, settings, redis
):
    # given
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    certificate = await uploaded(client, token, files.infected_pdf())
    early_link = certificate["downloadUrl"]
    assert (await client.get(early_link)).status_code == 200
    # when
    after = await scanned(settings, client, token, certificate["id"])
    # then
    assert after["status"] == "QUARANTINED"
    assert after["scan"]["threats"] == ["Eicar-Test-Signature"]
    assert after["downloadUrl"] is None
    assert (await client.get(early_link)).status_code == 404
    store = local_store(settings)
    [key] = await stored_keys(store, school)
    assert key.startswith("quarantine/")
    notes = await gql(client, NOTIFICATIONS, token=token)
    [note] = [edge["node"] for edge in notes["data"]["notifications"]["edges"]]
    assert note["type"] == "FILE_REJECTED" and "quarantined" in note["message"]
    # a quarantined certificate cannot be reviewed
    review = await gql(
        client,
        REVIEW,
        {"id": certificate["id"], "decision": "APPROVE"},
        token=school.token(school.admin),
    )
    assert error_codes(review) == ["VALIDATION_ERROR"]


@pytest.mark.parametrize(
    ("content", "name", "content_type", "fragment"),
    [
        (files.executable(), "certificate.pdf", "application/pdf", "not a PDF"),
        (files.pdf(), "certificate.exe", "application/x-msdownload", "not accepted"),
        (files.pdf(), "certificate.png", "image/png", "not a PNG"),
        (
            files.pdf() + bytes(MAX_FILE_SIZE + 1 - len(files.pdf())),
            "big.pdf",
            "application/pdf",
            "10 MB",
        ),
    ],
)
async def test_a_bad_file_is_a_validation_error_and_nothing_is_stored(
    client, factory, settings, content, name, content_type, fragment
):
    # given
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    # when
    response = await upload(client, token, content, name=name, content_type=content_type)
    # then
    body = response.json()
    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert body["errors"][0]["extensions"]["field"] == "file"
    assert fragment in body["errors"][0]["message"]
    assert await rows(factory, school) == []
    assert await stored_keys(local_store(settings), school) == []
    assert await audit_entries(factory, school) == []


async def test_a_body_over_the_limit_is_refused_before_it_is_read(client, factory):
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    content = files.pdf() + bytes(MAX_MULTIPART_BODY)
    response = await upload(client, token, content)
    assert response.status_code == 413
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "VALIDATION_ERROR"
    assert error["extensions"]["field"] == "file"
    assert await rows(factory, school) == []


async def test_a_chunked_body_is_cut_off_once_over_the_limit(client, factory):
    school = await factory.school(students=1)
    sent = 0

    async def body():
        nonlocal sent
        yield b'--x\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{}\r\n'
        yield b'--x\r\nContent-Disposition: form-data; name="0"; filename="a.pdf"\r\n\r\n'
        for _ in range(40):
            sent += 1024 * 1024
            yield bytes(1024 * 1024)

    response = await client.post(
        "/graphql",
        content=body(),
        headers={
            "content-type": "multipart/form-data; boundary=x",
            "apollo-require-preflight": "true",
            "authorization": f"Bearer {school.student_token(school.students[0])}",
        },
    )
    assert response.status_code == 413
    assert sent <= DRAIN_LIMIT + 2 * 1024 * 1024


async def test_a_file_variable_sent_as_json_is_a_validation_error(client, factory):
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    for value in ["JVBERi0=", 1, {"name": "a.pdf"}, ["x"]]:
        body = await gql(client, UPLOAD, {"file": value, "input": COVER}, token=token)
        assert error_codes(body) == ["VALIDATION_ERROR"], value
        assert body["errors"][0]["extensions"]["field"] == "file"
    assert await rows(factory, school) == []


async def test_uploads_need_the_preflight_header(client, factory):
    school = await factory.school(students=1)
    response = await upload(
        client, school.student_token(school.students[0]), files.pdf(), preflight=False
    )
    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_REQUEST"]
    assert "Apollo-Require-Preflight" in response.json()["errors"][0]["message"]
    assert await rows(factory, school) == []


async def test_cover_dates_are_checked(client, factory):
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    backwards = {"coversFrom": "2026-10-07", "coversTo": "2026-10-05"}
    body = (await upload(client, token, files.pdf(), cover=backwards)).json()
    assert error_codes(body) == ["VALIDATION_ERROR"]
    assert body["errors"][0]["extensions"]["field"] == "input.coversTo"
    assert await rows(factory, school) == []


async def test_only_the_student_their_teachers_and_admins_see_certificates(
    client, factory, settings
):
    # given two classes, a certificate in the first
    school = await factory.school(classrooms=2, students=2, teachers=2)
    mine, classmate = school.students_of(school.classrooms[0])
    other_class = school.students_of(school.classrooms[1])[0]
    certificate = await uploaded(client, school.student_token(mine))
    outsiders = {
        "classmate": school.student_token(classmate),
        "other teacher": school.token(school.teachers[1]),
        "partner": await factory.partner(school),
    }
    await factory.trust(LIST)
    # then: outsiders are refused, naming the student or not
    for who, token in outsiders.items():
        named = await gql(client, LIST, {"studentId": str(mine.id)}, token=token)
        assert error_codes(named) == ["FORBIDDEN"], who
    listed = await gql(client, LIST, token=school.token(school.teachers[1]))
    assert listed["data"]["medicalCertificates"]["totalCount"] == 0
    own = await gql(client, LIST, token=school.student_token(classmate))
    assert own["data"]["medicalCertificates"]["edges"] == []
    # a student may not upload for someone else
    for_other = dict(COVER, studentId=str(other_class.id))
    body = (await upload(client, school.student_token(mine), files.pdf(), cover=for_other)).json()
    assert error_codes(body) == ["FORBIDDEN"]
    # insiders see it; before the scan only the uploader gets a link
    for token in (school.token(school.teachers[0]), school.token(school.admin)):
        node = (await gql(client, LIST, {"studentId": str(mine.id)}, token=token))["data"][
            "medicalCertificates"
        ]["edges"][0]["node"]
        assert node["id"] == certificate["id"]
        assert node["downloadUrl"] is None
    await run_jobs(settings)
    node = (await gql(client, LIST, token=school.token(school.admin)))["data"][
        "medicalCertificates"
    ]["edges"][0]["node"]
    assert (await client.get(node["downloadUrl"])).status_code == 200


async def test_tampered_or_expired_links_are_forbidden(client, factory):
    school = await factory.school(students=1)
    certificate = await uploaded(client, school.student_token(school.students[0]))
    link = httpx.URL(certificate["downloadUrl"])
    params = dict(link.params)
    for name, value in [
        ("signature", "0" * 64),
        ("expires", str(int(params["expires"]) + 3600)),
        ("name", "other.pdf"),
        ("type", "text/html"),
    ]:
        response = await client.get(str(link.copy_with(params={**params, name: value})))
        assert response.status_code == 403, name
        assert error_codes(response.json()) == ["FORBIDDEN"]
    expired = await client.get(str(link.copy_with(params={**params, "expires": "1"})))
    assert expired.status_code == 403


async def test_approval_excuses_the_covered_absences(client, factory, settings, redis):
    # given absences on three days, one outside the certificate, and a present period
    school, student = await factory.student_with(
        [
            (DAY, 1, AttendanceStatus.ABSENT),
            (DAY, 2, AttendanceStatus.PRESENT),
            (DAY + timedelta(days=1), 1, AttendanceStatus.ABSENT),
            (DAY + timedelta(days=2), 1, AttendanceStatus.LEAVE),
            (DAY + timedelta(days=3), 1, AttendanceStatus.ABSENT),
        ],
    )
    token = school.student_token(student)
    before = (await gql(client, DASHBOARD, token=token))["data"]["studentDashboard"]
    certificate = await uploaded(client, token)
    await run_jobs(settings)
    # when the class teacher approves
    teacher = school.token(school.teachers[0])
    body = await gql(
        client, REVIEW, {"id": certificate["id"], "decision": "APPROVE"}, token=teacher
    )
    # then
    reviewed = body["data"]["reviewMedicalCertificate"]
    assert reviewed["status"] == "APPROVED"
    assert reviewed["excusedRecords"] == 2
    assert reviewed["reviewedBy"] == str(school.teachers[0].id)
    async with factory.session_factory() as session:
        statuses = dict(
            (
                await session.execute(
                    select(AttendanceRecord.date, AttendanceRecord.status).where(
                        AttendanceRecord.student_id == student.id, AttendanceRecord.period == 1
                    )
                )
            ).all()
        )
    assert statuses == {
        DAY: AttendanceStatus.SICK,
        DAY + timedelta(days=1): AttendanceStatus.SICK,
        DAY + timedelta(days=2): AttendanceStatus.LEAVE,
        DAY + timedelta(days=3): AttendanceStatus.ABSENT,
    }
    after = (await gql(client, DASHBOARD, token=token))["data"]["studentDashboard"]
    assert after["sickDays"] == before["sickDays"] + 2
    assert after["absentDays"] == before["absentDays"] - 2
    notes = await gql(client, NOTIFICATIONS, token=token)
    assert [e["node"]["type"] for e in notes["data"]["notifications"]["edges"]] == ["FILE_APPROVED"]
    entries = await audit_entries(factory, school)
    [review_entry] = [e for e in entries if e.action is AuditAction.CERTIFICATE_REVIEW]
    [sent] = [e for e in entries if e.action is AuditAction.NOTIFICATION_SENT]
    assert (
        sent.details["type"] == "FILE_APPROVED" and sent.user_id == school.accounts[student.id].id
    )
    assert review_entry.details["decision"] == "APPROVE"
    assert review_entry.details["excusedRecords"] == 2
    # a second review is refused
    again = await gql(
        client,
        REVIEW,
        {"id": certificate["id"], "decision": "REJECT", "reason": "x"},
        token=teacher,
    )
    assert error_codes(again) == ["VALIDATION_ERROR"]


async def test_rejection_needs_a_reason_and_tells_the_student(client, factory, settings, redis):
    school = await factory.school(classrooms=2, students=1, teachers=2)
    student = school.students[0]
    certificate = await uploaded(client, school.student_token(student))
    admin = school.token(school.admin)
    pending = await gql(
        client, REVIEW, {"id": certificate["id"], "decision": "APPROVE"}, token=admin
    )
    assert error_codes(pending) == ["VALIDATION_ERROR"]
    await run_jobs(settings)
    for token in (school.student_token(student), school.token(school.teachers[1])):
        refused = await gql(
            client, REVIEW, {"id": certificate["id"], "decision": "APPROVE"}, token=token
        )
        assert error_codes(refused) == ["FORBIDDEN"]
    no_reason = await gql(
        client, REVIEW, {"id": certificate["id"], "decision": "REJECT"}, token=admin
    )
    assert error_codes(no_reason) == ["VALIDATION_ERROR"]
    assert no_reason["errors"][0]["extensions"]["field"] == "reason"
    body = await gql(
        client,
        REVIEW,
        {"id": certificate["id"], "decision": "REJECT", "reason": "Unreadable scan"},
        token=admin,
    )
    assert body["data"]["reviewMedicalCertificate"]["status"] == "REJECTED"
    assert body["data"]["reviewMedicalCertificate"]["rejectionReason"] == "Unreadable scan"
    notes = await gql(client, NOTIFICATIONS, token=school.student_token(student))
    [note] = [e["node"] for e in notes["data"]["notifications"]["edges"]]
    assert note["type"] == "FILE_REJECTED" and "Unreadable scan" in note["message"]
    unknown = await gql(
        client, REVIEW, {"id": str(uuid.uuid4()), "decision": "APPROVE"}, token=admin
    )
    assert error_codes(unknown) == ["NOT_FOUND"]


async def test_staff_upload_for_a_student_and_pages_walk_newest_first(client, factory):
    school = await factory.school(students=2)
    student = school.students[1]
    admin = school.token(school.admin)
    ids = [
        (await uploaded(client, admin, cover=dict(COVER, studentId=str(student.id))))["id"]
        for _ in range(3)
    ]
    no_student = (await upload(client, admin, files.pdf())).json()
    assert error_codes(no_student) == ["VALIDATION_ERROR"]
    seen, after = [], None
    while True:
        page = (await gql(client, LIST, {"first": 2, "after": after}, token=admin))["data"][
            "medicalCertificates"
        ]
        assert page["totalCount"] == 3
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ids[::-1]
    pending = await gql(client, LIST, {"status": "APPROVED"}, token=admin)
    assert pending["data"]["medicalCertificates"]["totalCount"] == 0


async def test_storage_down_is_storage_unavailable_and_nothing_is_kept(
    factory, settings, unused_tcp_port
):
    down = dataclasses.replace(
        settings,
        storage_url=f"s3://key:secret@127.0.0.1:{unused_tcp_port}/certificates?secure=false",
    )
    school = await factory.school(students=1)
    async with api_process(down) as http:
        response = await upload(http, school.student_token(school.students[0]), files.pdf())
        ready = (await http.get("/health/ready")).json()
    assert error_codes(response.json()) == ["STORAGE_UNAVAILABLE"]
    assert await rows(factory, school) == []
    assert await audit_entries(factory, school) == []
    assert ready["status"] == "degraded" and ready["checks"]["storage"] == "down"


class DeletingStore:
    """A store around the real one that deletes the student while their file is written, as a
    concurrent removal would: the row then cannot be committed."""

    def __init__(self, inner: ObjectStore, factory: Factory, student: Student) -> None:
        self.inner, self.factory, self.student = inner, factory, student
        self.kind = inner.kind

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def put(self, key, source, *, size, content_type):
        await self.inner.put(key, source, size=size, content_type=content_type)
        async with self.factory.session_factory() as session, session.begin():
            await session.delete(await session.get(Student, self.student.id))


async def test_a_row_that_cannot_be_committed_leaves_no_object(factory, settings, redis):
    from arq.connections import ArqRedis

    from services.access import Access
    from services.audit import Origin
    from services.auth import Viewer
    from services.certificate_files import Cover, inspect_file
    from services.certificates import upload_certificate

    school = await factory.school(students=1)
    student = school.students[0]
    store = local_store(settings)
    viewer = Viewer(user_id=school.admin.id, tenant_id=school.tenant.id, role=Role.ADMIN)
    content = io.BytesIO(files.pdf())
    inspected = inspect_file(content, file_name="a.pdf", declared_type="application/pdf")
    with pytest.raises(Exception, match=r"foreign key|violates"):
        await upload_certificate(
            session_factory=factory.session_factory,
            store=DeletingStore(store, factory, student),
            queue=ArqRedis(connection_pool=redis.connection_pool),
            access=Access(viewer=viewer, session_factory=factory.session_factory),
            student_id=student.id,
            source=content,
            inspected=inspected,
            cover=Cover(DAY, DAY, None),
            today=DAY,
            origin=Origin(),
        )
    assert await stored_keys(store, school) == []
    assert await audit_entries(factory, school) == []


async def test_the_sweep_deletes_old_objects_no_row_names(client, factory, settings):
    school = await factory.school(students=1)
    certificate = await uploaded(client, school.student_token(school.students[0]))
    store = local_store(settings)
    orphan = f"tenants/{school.tenant.id}/certificates/{'0' * 32}"
    fresh_orphan = f"tenants/{school.tenant.id}/certificates/{'1' * 32}"
    for key in (orphan, fresh_orphan):
        await store.put(key, io.BytesIO(b"%PDF-"), size=5, content_type="application/pdf")
    hours_ago = time.time() - 7200
    for key in await stored_keys(store, school):
        if key != fresh_orphan:
            os.utime(store.path(key), (hours_ago, hours_ago))
    deleted = await sweep_orphans(session_factory=factory.session_factory, store=store)
    assert orphan in deleted
    kept = await stored_keys(store, school)
    assert orphan not in kept and fresh_orphan in kept and len(kept) == 2
    assert (await rows(factory, school))[0].id == uuid.UUID(certificate["id"])


@hypothesis_settings(max_examples=25)
@given(
    content=st.binary(max_size=300),
    name=st.text(max_size=40),
    content_type=st.sampled_from(["application/pdf", "image/png", "image/jpeg", "text/plain", ""]),
)
async def test_no_upload_crashes_the_server(client, school_for_fuzz, content, name, content_type):
    school, seen = school_for_fuzz
    body = (
        await upload(
            client,
            school.student_token(school.students[0]),
            content,
            name=name or "x",
            content_type=content_type or "application/octet-stream",
        )
    ).json()
    if "errors" in body:
        assert error_codes(body) in (["VALIDATION_ERROR"], ["BAD_REQUEST"]), body
        assert body["errors"][0]["extensions"].get("field", "file") == "file"
    else:
        seen.append(body["data"]["uploadMedicalCertificate"]["id"])


@pytest.fixture
async def school_for_fuzz(factory) -> tuple[School, list[str]]:
    return await factory.school(students=1), []


@pytest.fixture(scope="module")
def clamd_url(tmp_path_factory: pytest.TempPathFactory):
    if clamd_binary() is None:
        pytest.skip("clamd is not installed (Debian package clamav-daemon; .ci/run installs it)")
    with clamd(tmp_path_factory.mktemp("clamd")) as url:
        yield url


async def test_on_s3_with_clamd_clean_files_download_and_eicar_is_quarantined(
    factory, settings, s3_server, clamd_url, redis
):
    # given an API and worker on real S3 and a real clamd
    s3_settings = dataclasses.replace(
        settings,
        storage_url=s3_server.storage_url(f"certificates-{uuid.uuid4().hex[:8]}"),
        clamd_url=clamd_url,
    )
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    async with api_process(s3_settings) as http:
        clean = await uploaded(http, token, files.png(), name="scan.png", content_type="image/png")
        infected = await uploaded(http, token, files.infected_pdf())
        early_link = infected["downloadUrl"]
        assert (await follow_link(http, early_link)).status_code == 200
        # when
        await run_jobs(s3_settings)
        listed = (await gql(http, LIST, token=token))["data"]["medicalCertificates"]["edges"]
        # then
        by_id = {edge["node"]["id"]: edge["node"] for edge in listed}
        assert by_id[clean["id"]]["status"] == "AWAITING_REVIEW"
        assert by_id[clean["id"]]["scan"]["engine"] == "clamd"
        assert by_id[infected["id"]]["status"] == "QUARANTINED"
        assert by_id[infected["id"]]["scan"]["threats"][0].startswith("Eicar-Test-Signature")
        served = await follow_link(http, by_id[clean["id"]]["downloadUrl"])
        assert served.status_code == 200 and served.content == files.png()
        assert (await http.get(early_link)).status_code == 404


async def test_over_a_real_socket_a_client_reads_the_413_of_a_body_slightly_too_large(
    factory, settings
):
    """A client still writing its body when the server answers often never reads that answer;
    a refused body up to twice the limit is read to the end first."""
    school = await factory.school(students=1)
    token = school.student_token(school.students[0])
    async with (
        running_server(process_env(settings)) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        for extra in (1024 * 1024, MAX_MULTIPART_BODY - 64 * 1024):
            response = await upload(http, token, files.pdf() + bytes(MAX_MULTIPART_BODY + extra))
            assert response.status_code == 413
            assert response.json()["errors"][0]["extensions"]["field"] == "file"
        # far larger: cut off at once, whether or not this client gets to read the answer
        with contextlib.suppress(httpx.TransportError):
            response = await upload(http, token, bytes(3 * MAX_MULTIPART_BODY))
            assert response.status_code == 413
        assert (await upload(http, token, files.pdf())).status_code == 200
    assert await rows(factory, school) != []


@pytest.mark.parametrize(
    ("files_map", "sent"),
    [
        ({"0": ["variables.file"], "1": ["variables.file"]}, ["0", "1"]),
        ({"0": ["variables.file"]}, ["0", "1", "2"]),
        ({"0": "variables.file"}, ["0"]),
    ],
)
async def test_a_multipart_map_must_name_each_file_once(client, factory, files_map, sent):
    school = await factory.school(students=1)
    operations = {"query": UPLOAD, "variables": {"file": None, "input": COVER}}
    response = await client.post(
        "/graphql",
        data={
            "operations": orjson.dumps(operations).decode(),
            "map": orjson.dumps(files_map).decode(),
        },
        files={key: ("note.pdf", files.pdf(), "application/pdf") for key in sent},
        headers={
            "apollo-require-preflight": "true",
            "authorization": f"Bearer {school.student_token(school.students[0])}",
        },
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert await stored_keys(local_store(factory.settings), school) == []
