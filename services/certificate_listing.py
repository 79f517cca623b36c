"""Reading medical certificates: the page a viewer may see (their own, their classes', or the
school's), and the signed links that download them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.access import Access
from services.directory import existing
from services.downloads import Links
from services.models import FileStatus, MedicalCertificate, Role, Student
from services.platform.errors import NotFound
from services.platform.keyset import KeysetPage, keyset_page
from services.platform.storage import Download

LINK_LIFETIME = timedelta(hours=24)
# Only a scanned, clean file is shown to anyone but its uploader.
SCANNED_CLEAN = frozenset({FileStatus.AWAITING_REVIEW, FileStatus.APPROVED, FileStatus.REJECTED})


async def certificates_page(
    session: AsyncSession,
    *,
    access: Access,
    student_id: uuid.UUID | None,
    status: FileStatus | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> KeysetPage[MedicalCertificate]:
    """Certificates the viewer may read, newest first: a student's own; a teacher's classes'
    (or one student's); an admin's whole tenant (or one student's)."""
    access.ensure_handles_certificates()
    tenant_id = access.tenant_id
    scope = [MedicalCertificate.tenant_id == tenant_id]
    viewer = access.viewer
    if student_id is None and viewer.role is Role.STUDENT:
        if viewer.student_id is None:
            raise NotFound("This account has no student record.")
        student_id = viewer.student_id
    if student_id is not None:
        access.ensure_student_reads_own(student_id)
        student = await existing(session, Student, tenant_id, student_id)
        await access.ensure_can_access_certificates(
            student_id=student.id, classroom_id=student.classroom_id
        )
        scope.append(MedicalCertificate.student_id == student_id)
    elif not access.sees_whole_tenant():
        taught = select(Student.id).where(
            Student.tenant_id == tenant_id,
            Student.classroom_id.in_(await access.own_classroom_ids()),
        )
        scope.append(MedicalCertificate.student_id.in_(taught))
    if status is not None:
        scope.append(MedicalCertificate.status == status)
    order = (MedicalCertificate.uploaded_at, MedicalCertificate.id)
    return await keyset_page(
        session,
        MedicalCertificate,
        scope,
        order=order,
        after=after,
        limit=limit,
        newest_first=True,
    )


def download_url(
    links: Links, certificate: MedicalCertificate, *, viewer_id: uuid.UUID
) -> str | None:
    """A link valid for 24 h, for a viewer already allowed to read the certificate: once it
    scanned clean, or for its uploader before that; never once quarantined."""
    if certificate.status is FileStatus.QUARANTINED:
        return None
    if certificate.status not in SCANNED_CLEAN and certificate.uploaded_by != viewer_id:
        return None
    return links.sign(
        certificate.object_key,
        download=Download(file_name=certificate.file_name, content_type=certificate.content_type),
        user_id=viewer_id,
        expires_in=LINK_LIFETIME,
    )
