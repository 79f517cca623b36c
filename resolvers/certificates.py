"""Medical certificates: upload, review, listing and download links."""

from __future__ import annotations

import asyncio
from datetime import date
from urllib.parse import urljoin

from starlette.datastructures import UploadFile

from resolvers.context import Info, parse_id
from resolvers.pagination import (
    Page,
    decode_time_cursor,
    encode_time_cursor,
    page_size,
    relay_page,
)
from services import certificate_files, certificate_listing, certificates
from services.models import FileStatus, MedicalCertificate
from services.platform.errors import Invalid
from services.tenants import tenant_today

CERTIFICATE_CURSOR = "certificate"
UPLOAD_LIMIT = "upload"


async def upload(
    info: Info,
    file: object,
    *,
    student_id: str | None,
    covers_from: date,
    covers_to: date,
    description: str | None,
) -> MedicalCertificate:
    context = info.context
    viewer = context.viewer
    await context.limit(UPLOAD_LIMIT)
    if not isinstance(file, UploadFile):
        # The Upload scalar passes any JSON value through: only a multipart part is a file.
        raise Invalid("file", "Send the file as a GraphQL multipart request (see the README).")
    if student_id is not None:
        student = parse_id(student_id, "input.studentId")
    elif viewer.student_id is not None:
        student = viewer.student_id
    else:
        raise Invalid("input.studentId", "Name the student the certificate is for.")
    cover = certificate_files.Cover(
        covers_from=covers_from, covers_to=covers_to, description=description or None
    )
    # Reading (and hashing) up to 10 MB is blocking file I/O: off the event loop.
    inspected = await asyncio.to_thread(
        certificate_files.inspect_file,
        file.file,
        file_name=file.filename,
        declared_type=file.content_type,
    )
    tenant = await context.tenant()
    return await certificates.upload_certificate(
        session_factory=context.session_factory,
        store=context.store,
        queue=context.redis,
        access=context.access,
        student_id=student,
        source=file.file,
        inspected=inspected,
        cover=cover,
        today=tenant_today(tenant, context.now()),
        origin=context.origin,
    )


async def review(
    info: Info, certificate_id: str, decision: certificates.Decision, reason: str | None
) -> MedicalCertificate:
    context = info.context
    return await certificates.review_certificate(
        session_factory=context.session_factory,
        access=context.access,
        certificate_id=parse_id(certificate_id, "id"),
        decision=decision,
        reason=reason,
        queue=context.redis,
        cache=context.cache,
        refresh_delay_seconds=context.settings.statistics_refresh_delay_seconds,
        now=context.now().timestamp(),
        email_available=context.settings.smtp_url is not None,
        origin=context.origin,
    )


async def certificates_page(
    info: Info,
    student_id: str | None,
    status: FileStatus | None,
    first: int | None,
    after: str | None,
) -> Page[MedicalCertificate]:
    context = info.context
    size = page_size(first, 20)
    student = parse_id(student_id, "studentId") if student_id is not None else None
    position = decode_time_cursor(after, CERTIFICATE_CURSOR)
    async with context.session_factory() as session:
        page = await certificate_listing.certificates_page(
            session,
            access=context.access,
            student_id=student,
            status=status,
            after=position,
            limit=size,
        )
    return relay_page(
        page, lambda c: encode_time_cursor(CERTIFICATE_CURSOR, c.uploaded_at, c.id), position
    )


def download_url(info: Info, certificate: MedicalCertificate) -> str | None:
    """An absolute link: this API serves every download, under its public URL."""
    context = info.context
    link = certificate_listing.download_url(
        context.links, certificate, viewer_id=context.viewer.user_id
    )
    return None if link is None else urljoin(context.public_url, link)
