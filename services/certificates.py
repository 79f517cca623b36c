"""Medical certificates: upload, scan and review (their files: certificate_files.py; reading
them: certificate_listing.py).

Nothing is ever half-written. The object is stored first and the row (with its audit entry)
committed after; if the commit fails the object is deleted, and ``sweep_orphans`` removes any
object a crash left without a row. The scan job moves an infected object out of reach before
the row says QUARANTINED, and repeats safely.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import BinaryIO

from arq.connections import ArqRedis
from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import audit
from services.access import Access
from services.attendance import after_marks_changed
from services.certificate_files import (
    MAX_TEXT,
    Cover,
    Inspected,
    validate_cover,
)
from services.dashboards import AttendanceEntry
from services.directory import existing, locked
from services.live import publish_notifications
from services.models import (
    AttendanceRecord,
    AttendanceStatus,
    AuditAction,
    FileStatus,
    MedicalCertificate,
    Notification,
    NotificationType,
    Severity,
    Student,
    Subject,
)
from services.notifications import Draft, notify
from services.platform.cache import Cache
from services.platform.db import SessionFactory
from services.platform.errors import Invalid, NotFound, ServiceError
from services.platform.scanning import Scanner, ScanResult
from services.platform.storage import (
    ObjectMissing,
    ObjectStore,
    StorageUnavailable,
    new_key,
    quarantine_key,
)
from services.queue import SCAN_CERTIFICATE, enqueue_row_job, schedule_emails

ORPHAN_AGE = timedelta(hours=1)
OBJECT_KIND = "certificates"
RESOURCE = "medical_certificate"
logger = logging.getLogger(__name__)


class Decision(StrEnum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"


async def upload_certificate(
    *,
    session_factory: SessionFactory,
    store: ObjectStore,
    queue: ArqRedis,
    access: Access,
    student_id: uuid.UUID,
    source: BinaryIO,
    inspected: Inspected,
    cover: Cover,
    today: date,
    origin: audit.Origin,
) -> MedicalCertificate:
    """Store a checked file as the student's certificate (PENDING) and queue its scan.

    The object is written before the row, so a row always has its object; if the row cannot
    be committed the object is deleted again (or swept later). The FILE_UPLOAD audit entry
    commits with the row.
    """
    validate_cover(cover, today=today)
    tenant_id = access.tenant_id
    async with session_factory() as session:
        student = await existing(session, Student, tenant_id, student_id)
    await access.ensure_can_access_certificates(
        student_id=student.id, classroom_id=student.classroom_id
    )
    key = new_key(tenant_id, OBJECT_KIND)
    await store.put(key, source, size=inspected.size, content_type=inspected.content_type)
    try:
        async with session_factory() as session, session.begin():
            certificate = MedicalCertificate(
                tenant_id=tenant_id,
                student_id=student.id,
                uploaded_by=access.viewer.user_id,
                file_name=inspected.file_name,
                content_type=inspected.content_type,
                size=inspected.size,
                sha256=inspected.sha256,
                object_key=key,
                status=FileStatus.PENDING,
                covers_from=cover.covers_from,
                covers_to=cover.covers_to,
                description=cover.description,
            )
            session.add(certificate)
            await session.flush()
            await session.refresh(certificate)
            audit.record(
                session,
                tenant_id=tenant_id,
                user_id=access.viewer.user_id,
                action=AuditAction.FILE_UPLOAD,
                resource=RESOURCE,
                resource_id=str(certificate.id),
                success=True,
                origin=origin,
                details={
                    "fileName": inspected.file_name,
                    "size": inspected.size,
                    "contentType": inspected.content_type,
                    "sha256": inspected.sha256,
                    "studentId": str(student.id),
                    "status": FileStatus.PENDING.value,
                    "uploadedAt": certificate.uploaded_at.isoformat(),
                },
            )
    except BaseException:
        await _discard(store, key)
        raise
    async with session_factory() as session:
        await enqueue_row_job(queue, session, SCAN_CERTIFICATE, tenant_id, certificate.id)
    return certificate


async def _discard(store: ObjectStore, key: str) -> None:
    """Best effort: an object that cannot be deleted now is swept later."""
    try:
        await store.delete(key)
    except ServiceError:
        logger.warning("could not delete %s after a failed upload; the sweep will", key)


async def scan_certificate(
    *,
    session_factory: SessionFactory,
    store: ObjectStore,
    scanner: Scanner,
    redis: Redis,
    queue: ArqRedis,
    tenant_id: uuid.UUID,
    certificate_id: uuid.UUID,
    email_available: bool,
) -> FileStatus | None:
    """Scan a PENDING (or interrupted SCANNING) certificate: clean → AWAITING_REVIEW, a threat
    → the object moves to quarantine, QUARANTINED, and the student is told. Repeating it is
    harmless; a certificate past scanning is left alone. The status it ends in (None when
    there is no such certificate). Scanner or storage failures raise, and the job retries."""
    async with session_factory() as session, session.begin():
        certificate = await locked(session, MedicalCertificate, tenant_id, certificate_id)
        if certificate is None:
            return None
        if certificate.status not in {FileStatus.PENDING, FileStatus.SCANNING}:
            return certificate.status
        certificate.status = FileStatus.SCANNING
        key = certificate.object_key
    try:
        result = await scanner.scan(store.chunks(key))
    except ObjectMissing:
        # An earlier try moved it to quarantine and stopped before saying so.
        if not await store.exists(quarantine_key(key)):
            raise
        result = ScanResult(clean=False, threats=("quarantined by an earlier scan",), engine="")
    if not result.clean:
        await store.move(key, quarantine_key(key))
    created: list[Notification] = []
    async with session_factory() as session:
        async with session.begin():
            certificate = await locked(session, MedicalCertificate, tenant_id, certificate_id)
            if certificate is None or certificate.status is not FileStatus.SCANNING:
                return None if certificate is None else certificate.status
            certificate.scan_result = result.as_dict()
            certificate.scanned_at = func.now()
            if result.clean:
                certificate.status = FileStatus.AWAITING_REVIEW
            else:
                certificate.status = FileStatus.QUARANTINED
                certificate.object_key = quarantine_key(key)
                created = await _tell_student(
                    session,
                    certificate,
                    Draft(
                        kind=NotificationType.FILE_REJECTED,
                        severity=Severity.ERROR,
                        title="Certificate quarantined",
                        message=f"{certificate.file_name} failed the virus scan and was "
                        "quarantined. Upload a clean copy.",
                        details={"certificateId": str(certificate.id)},
                        dedupe_key=f"certificate:{certificate.id}:quarantined",
                    ),
                    email_available=email_available,
                )
            status = certificate.status
        await _announce(redis, queue, session, tenant_id, created)
    return status


async def _tell_student(
    session: AsyncSession,
    certificate: MedicalCertificate,
    draft: Draft,
    *,
    email_available: bool,
) -> list[Notification]:
    student = await existing(session, Student, certificate.tenant_id, certificate.student_id)
    if student.user_id is None:
        return []
    notification = await notify(
        session,
        tenant_id=certificate.tenant_id,
        user_id=student.user_id,
        draft=draft,
        email_available=email_available,
    )
    return [] if notification is None else [notification]


async def _announce(
    redis: Redis,
    queue: ArqRedis,
    session: AsyncSession,
    tenant_id: uuid.UUID,
    notifications: Sequence[Notification],
) -> None:
    """After the commit: push in-app notifications live and queue their e-mails."""
    await publish_notifications(redis, tenant_id=tenant_id, notifications=notifications)
    await schedule_emails(queue, session, notification_ids=[n.id for n in notifications])


async def review_certificate(
    *,
    session_factory: SessionFactory,
    access: Access,
    certificate_id: uuid.UUID,
    decision: Decision,
    reason: str | None,
    queue: ArqRedis,
    cache: Cache,
    refresh_delay_seconds: int,
    now: float,
    email_available: bool,
    origin: audit.Origin,
) -> MedicalCertificate:
    """APPROVE or REJECT a certificate awaiting review, in one transaction with its audit
    entry and the student's FILE_APPROVED / FILE_REJECTED notification. Approval turns the
    student's ABSENT records in the covered dates into SICK; the dashboards, statistics and
    live subscribers then learn of it as of any mark."""
    reason = (reason or "").strip() or None
    if decision is Decision.REJECT and reason is None:
        raise Invalid("reason", "Say why the certificate is rejected.")
    if reason is not None and len(reason) > MAX_TEXT:
        raise Invalid("reason", f"The reason is limited to {MAX_TEXT} characters.")
    access.ensure_handles_certificates()
    tenant_id = access.tenant_id
    reviewer = access.viewer.user_id
    excused: list[AttendanceEntry] = []
    async with session_factory() as session:
        async with session.begin():
            certificate = await locked(session, MedicalCertificate, tenant_id, certificate_id)
            if certificate is None:
                raise NotFound("No such certificate.")
            student = await existing(session, Student, tenant_id, certificate.student_id)
            await access.ensure_can_review(student.classroom_id)
            if certificate.status is not FileStatus.AWAITING_REVIEW:
                raise Invalid(
                    "id",
                    f"Only certificates awaiting review can be reviewed; this one is "
                    f"{certificate.status.value}.",
                )
            certificate.reviewed_by = reviewer
            certificate.reviewed_at = func.now()
            if decision is Decision.APPROVE:
                certificate.status = FileStatus.APPROVED
                excused = await _excuse_absences(session, certificate, reviewer)
                certificate.excused_records = len(excused)
                draft = Draft(
                    kind=NotificationType.FILE_APPROVED,
                    severity=Severity.SUCCESS,
                    title="Certificate approved",
                    message=f"{certificate.file_name} was approved: {len(excused)} absence(s) "
                    f"from {certificate.covers_from} to {certificate.covers_to} are now SICK.",
                    details={"certificateId": str(certificate.id)},
                    dedupe_key=f"certificate:{certificate.id}:review",
                )
            else:
                certificate.status = FileStatus.REJECTED
                certificate.rejection_reason = reason
                draft = Draft(
                    kind=NotificationType.FILE_REJECTED,
                    severity=Severity.WARNING,
                    title="Certificate rejected",
                    message=f"{certificate.file_name} was rejected: {reason}",
                    details={"certificateId": str(certificate.id)},
                    dedupe_key=f"certificate:{certificate.id}:review",
                )
            audit.record(
                session,
                tenant_id=tenant_id,
                user_id=reviewer,
                action=AuditAction.CERTIFICATE_REVIEW,
                resource=RESOURCE,
                resource_id=str(certificate.id),
                success=True,
                origin=origin,
                details={
                    "decision": decision.value,
                    "reason": reason,
                    "studentId": str(student.id),
                    "excusedRecords": len(excused),
                },
            )
            created = await _tell_student(
                session, certificate, draft, email_available=email_available
            )
            subject_names = await _subject_names(session, {r.subject_id for r in excused})
            await session.flush()
            await session.refresh(certificate)
        await _announce(cache.redis, queue, session, tenant_id, created)
        await after_marks_changed(
            session,
            tenant_id=tenant_id,
            classroom_id=student.classroom_id,
            records=excused,
            subject_names=subject_names,
            queue=queue,
            cache=cache,
            refresh_delay_seconds=refresh_delay_seconds,
            now=now,
        )
    return certificate


async def _excuse_absences(
    session: AsyncSession, certificate: MedicalCertificate, reviewer: uuid.UUID
) -> list[AttendanceEntry]:
    """ABSENT → SICK for the covered dates; the changed records."""
    changed = await session.scalars(
        update(AttendanceRecord)
        .where(
            AttendanceRecord.tenant_id == certificate.tenant_id,
            AttendanceRecord.student_id == certificate.student_id,
            AttendanceRecord.date.between(certificate.covers_from, certificate.covers_to),
            AttendanceRecord.status == AttendanceStatus.ABSENT,
        )
        .values(status=AttendanceStatus.SICK, marked_by=reviewer, marked_at=func.now())
        .returning(AttendanceRecord),
        execution_options={"synchronize_session": False},
    )
    return sorted(
        (AttendanceEntry.of(record) for record in changed), key=lambda r: (r.date, r.period)
    )


async def _subject_names(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = await session.execute(select(Subject.id, Subject.name).where(Subject.id.in_(ids)))
    return {subject_id: name for subject_id, name in rows}


async def sweep_orphans(
    *, session_factory: SessionFactory, store: ObjectStore, now: datetime | None = None
) -> list[str]:
    """Delete certificate objects older than an hour that no row names (left by a crash
    between storing and committing); the keys deleted."""
    cutoff = (now or datetime.now(UTC)) - ORPHAN_AGE
    objects = [
        found
        for prefix in ("tenants/", quarantine_key("tenants/"))
        for found in await store.listing(prefix)
        if f"/{OBJECT_KIND}/" in found.key and found.modified < cutoff
    ]
    if not objects:
        return []
    async with session_factory() as session:
        known = set(
            await session.scalars(
                select(MedicalCertificate.object_key).where(
                    MedicalCertificate.object_key.in_([found.key for found in objects])
                )
            )
        )
    deleted = []
    for found in objects:
        if found.key not in known:
            try:
                await store.delete(found.key)
            except StorageUnavailable:
                logger.warning("could not delete orphan %s; next sweep", found.key)
                continue
            deleted.append(found.key)
    return deleted
