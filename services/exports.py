"""Exports of attendance: requested (audited), built by a job, downloaded through a signed link.

The request writes the export row and its DATA_EXPORT audit entry in one transaction, then
queues ``build_export``. The job streams the rows the requester may read from PostgreSQL (a
server-side cursor, a batch at a time) into a temporary file, stores it, and in one transaction
marks the export READY and notifies the requester (EXPORT_READY, deduplicated per export), so
memory stays flat whatever the row count and a re-run never notifies twice. A job that fails
its last try marks the export FAILED.

Files: CSV (a header row, then one row per mark; UTF-8) or JSON (an array of objects, one per
line). Rows are ordered by date, classroom, period and student name.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import urljoin

from arq.connections import ArqRedis
from redis.asyncio import Redis
from sqlalchemy import ColumnElement, false, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services import audit
from services.access import Access
from services.directory import locked
from services.downloads import Links
from services.export_files import CONTENT_TYPES, EXTENSIONS, write_rows
from services.live import publish_notifications
from services.models import (
    AttendanceRecord,
    AuditAction,
    Export,
    ExportFormat,
    ExportStatus,
    NotificationType,
    Role,
    Severity,
    Student,
    TeacherAssignment,
    User,
)
from services.notifications import Draft, notify
from services.platform.db import SessionFactory
from services.platform.errors import Invalid, NotFound, ServiceError
from services.platform.keyset import KeysetPage, keyset_page
from services.platform.storage import Download, ObjectStore, new_key
from services.queue import BUILD_EXPORT, Queue, enqueue, enqueue_row_job, schedule_emails

MAX_RANGE_DAYS = 366
LINK_LIFETIME = timedelta(hours=24)
OBJECT_KIND = "exports"
RESOURCE = "export"
EXPIRY_BATCH = 100
FINISHED = frozenset({ExportStatus.READY, ExportStatus.FAILED, ExportStatus.EXPIRED})
UNEXPECTED_FAILURE = "The export could not be built. Request it again later."
# While a process is short of CPU or memory an export's build waits this long (it is the
# heaviest thing a user can ask for), at most MAX_DEFERRALS times: deferred, never denied.
BUILD_DEFER_SECONDS = 120
MAX_DEFERRALS = 30
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExportRequest:
    format: ExportFormat
    date_from: date
    date_to: date


def validate_request(request: ExportRequest, *, access: Access) -> None:
    """Checks that need no data, made before anything is written or counted: a range
    ``from`` ≤ ``to`` of at most 366 days (VALIDATION_ERROR naming ``input.to``), and a
    student account that has a student record."""
    if request.date_from > request.date_to:
        raise Invalid("input.to", "to must not be before from.")
    if (request.date_to - request.date_from).days + 1 > MAX_RANGE_DAYS:
        raise Invalid("input.to", f"An export covers at most {MAX_RANGE_DAYS} days.")
    viewer = access.viewer
    if viewer.role is Role.STUDENT and viewer.student_id is None:
        raise NotFound("This account has no student record.")


async def request_export(
    *,
    session_factory: SessionFactory,
    queue: ArqRedis,
    access: Access,
    request: ExportRequest,
    origin: audit.Origin,
    constrained: bool = False,
) -> Export:
    """A PENDING export of what the viewer may read (a student their own marks, a teacher
    their classes', an admin or partner the whole school's), committed with its DATA_EXPORT
    audit entry; its ``build_export`` job is queued after the commit (or kept in the outbox),
    to start at once, or ``BUILD_DEFER_SECONDS`` later when the process is ``constrained``
    (short of CPU or memory)."""
    validate_request(request, access=access)
    viewer = access.viewer
    async with session_factory() as session:
        async with session.begin():
            export = Export(
                tenant_id=viewer.tenant_id,
                requested_by=viewer.user_id,
                format=request.format,
                date_from=request.date_from,
                date_to=request.date_to,
                status=ExportStatus.PENDING,
            )
            session.add(export)
            await session.flush()
            await session.refresh(export)
            audit.record(
                session,
                tenant_id=viewer.tenant_id,
                user_id=viewer.user_id,
                action=AuditAction.DATA_EXPORT,
                resource=RESOURCE,
                resource_id=str(export.id),
                success=True,
                origin=origin,
                details={
                    "format": request.format.value,
                    "from": request.date_from.isoformat(),
                    "to": request.date_to.isoformat(),
                    "role": viewer.role.value,
                    "requestedAt": export.created_at.isoformat(),
                },
            )
        defer = BUILD_DEFER_SECONDS if constrained else 0
        await enqueue_row_job(
            queue, session, BUILD_EXPORT, viewer.tenant_id, export.id, defer_seconds=defer
        )
    return export


def should_defer(deferrals: int, *, constrained: bool) -> bool:
    """Whether a build a ``constrained`` worker picks up waits again (it has waited
    ``deferrals`` times already)."""
    return constrained and deferrals < MAX_DEFERRALS


async def defer_build(
    *,
    session_factory: SessionFactory,
    queue: ArqRedis,
    tenant_id: uuid.UUID,
    export_id: uuid.UUID,
    deferrals: int,
) -> None:
    """Queue the build again ``BUILD_DEFER_SECONDS`` from now, as its ``deferrals``-th deferral
    (a job id of its own: the running one still holds the export's)."""
    async with session_factory() as session:
        await enqueue(
            queue,
            session,
            BUILD_EXPORT,
            str(tenant_id),
            str(export_id),
            deferrals,
            queue=Queue.NORMAL,
            job_id=f"{BUILD_EXPORT}:{export_id}:deferred-{deferrals}",
            defer_seconds=BUILD_DEFER_SECONDS,
        )


async def exports_page(
    session: AsyncSession,
    *,
    access: Access,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> KeysetPage[Export]:
    """The viewer's own exports, newest first, keyset-paginated on (created_at, id)."""
    viewer = access.viewer
    scope = [Export.tenant_id == viewer.tenant_id, Export.requested_by == viewer.user_id]
    order = (Export.created_at, Export.id)
    return await keyset_page(
        session, Export, scope, order=order, after=after, limit=limit, newest_first=True
    )


async def own_export(
    session: AsyncSession, *, access: Access, export_id: uuid.UUID
) -> Export | None:
    """One of the viewer's exports; None for anyone else's."""
    viewer = access.viewer
    return await session.scalar(
        select(Export).where(
            Export.tenant_id == viewer.tenant_id,
            Export.requested_by == viewer.user_id,
            Export.id == export_id,
        )
    )


def download_url(links: Links, export: Export, *, viewer_id: uuid.UUID) -> str | None:
    """A link valid for 24 h once READY, for the requester only."""
    if export.status is not ExportStatus.READY or export.object_key is None:
        return None
    if export.requested_by != viewer_id:
        return None
    return _sign(links, export.object_key, export, viewer_id)


def _sign(links: Links, key: str, export: Export, user_id: uuid.UUID) -> str:
    return links.sign(key, download=_download(export), user_id=user_id, expires_in=LINK_LIFETIME)


def _download(export: Export) -> Download:
    name = f"attendance_{export.date_from}_{export.date_to}.{EXTENSIONS[export.format]}"
    return Download(file_name=name, content_type=CONTENT_TYPES[export.format])


async def build_export(
    *,
    session_factory: SessionFactory,
    store: ObjectStore,
    links: Links,
    redis: Redis,
    queue: ArqRedis,
    tenant_id: uuid.UUID,
    export_id: uuid.UUID,
    public_url: str | None,
    email_available: bool,
) -> ExportStatus | None:
    """Build a PENDING (or interrupted RUNNING) export: stream its rows to a temporary file,
    store it, then mark it READY and notify the requester in one transaction. A finished
    export is left alone, and a re-run writes the same key again, so repeating is harmless.
    The status it ends in (None when there is no such export). Storage or database failures
    raise, and the job retries."""
    async with session_factory() as session, session.begin():
        export = await locked(session, Export, tenant_id, export_id)
        if export is None:
            return None
        if export.status in FINISHED:
            return export.status
        export.status = ExportStatus.RUNNING
        export.object_key = export.object_key or new_key(tenant_id, OBJECT_KIND)
        scope = await _scope(session, export)
    key = export.object_key
    with tempfile.TemporaryFile() as spool:
        row_count = await write_rows(session_factory, export, scope, spool)
        size = spool.seek(0, os.SEEK_END)
        spool.seek(0)
        await store.put(key, spool, size=size, content_type=CONTENT_TYPES[export.format])
    link = _absolute(_sign(links, key, export, export.requested_by), public_url)
    async with session_factory() as session:
        async with session.begin():
            export = await locked(session, Export, tenant_id, export_id)
            if export is None or export.status is not ExportStatus.RUNNING:
                return None if export is None else export.status
            export.status = ExportStatus.READY
            export.row_count = row_count
            export.size = size
            export.error = None
            export.completed_at = func.now()
            notification = await notify(
                session,
                tenant_id=tenant_id,
                user_id=export.requested_by,
                draft=Draft(
                    kind=NotificationType.EXPORT_READY,
                    severity=Severity.SUCCESS,
                    title="Export ready",
                    message=f"Your {export.format.value} export of attendance from "
                    f"{export.date_from} to {export.date_to} "
                    f"({row_count} {'row' if row_count == 1 else 'rows'}) is ready. "
                    "The link works for 24 hours; the export's downloadUrl gives a new one.",
                    action_url=link,
                    details={"exportId": str(export.id)},
                    dedupe_key=f"export:{export.id}:ready",
                ),
                email_available=email_available,
            )
        created = [] if notification is None else [notification]
        await publish_notifications(redis, tenant_id=tenant_id, notifications=created)
        await schedule_emails(queue, session, notification_ids=[n.id for n in created])
    return ExportStatus.READY


async def mark_failed(
    *,
    session_factory: SessionFactory,
    store: ObjectStore,
    tenant_id: uuid.UUID,
    export_id: uuid.UUID,
    error: BaseException,
) -> None:
    """After the last try failed: FAILED with a message safe to show, and no object kept."""
    message = error.message if isinstance(error, ServiceError) else UNEXPECTED_FAILURE
    async with session_factory() as session, session.begin():
        export = await locked(session, Export, tenant_id, export_id)
        if export is None or export.status in FINISHED:
            return
        key = export.object_key
        export.status = ExportStatus.FAILED
        export.error = message
        export.object_key = None
        export.completed_at = func.now()
    if key is not None:
        try:
            await store.delete(key)
        except ServiceError:
            logger.warning("could not delete %s of failed export %s", key, export_id)


async def expire_exports(
    *, session_factory: SessionFactory, store: ObjectStore, older_than: datetime
) -> int:
    """Delete the files of READY exports finished before ``older_than`` and mark them EXPIRED
    (exports hold personal data: kept no longer than needed); how many. A batch at a time,
    each export's object deleted before its row says so (a failure leaves it for the next run)."""
    expired = 0
    while True:
        async with session_factory() as session, session.begin():
            batch = list(
                await session.scalars(
                    select(Export)
                    .where(Export.status == ExportStatus.READY, Export.completed_at < older_than)
                    .order_by(Export.completed_at)
                    .limit(EXPIRY_BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            for export in batch:
                if export.object_key is not None:
                    await store.delete(export.object_key)
                export.status = ExportStatus.EXPIRED
                export.object_key = None
        expired += len(batch)
        if len(batch) < EXPIRY_BATCH:
            return expired


async def _scope(session: AsyncSession, export: Export) -> list[ColumnElement[bool]]:
    """What the requester may read now (rights are checked when the rows are read, so a
    teacher who no longer teaches a class does not get it): a student their own marks, a
    teacher their classrooms', an admin or partner the whole tenant's, an account deactivated
    meanwhile nothing."""
    role = await session.scalar(
        select(User.role).where(
            User.tenant_id == export.tenant_id, User.id == export.requested_by, User.active
        )
    )
    if role is None:  # deactivated since the request: reads nothing
        return [false()]
    if role in {Role.ADMIN, Role.PARTNER}:
        return []
    if role is Role.TEACHER:
        taught = select(TeacherAssignment.classroom_id).where(
            TeacherAssignment.tenant_id == export.tenant_id,
            TeacherAssignment.teacher_id == export.requested_by,
        )
        return [AttendanceRecord.classroom_id.in_(taught)]
    own = select(Student.id).where(
        Student.tenant_id == export.tenant_id, Student.user_id == export.requested_by
    )
    return [AttendanceRecord.student_id.in_(own)]


def _absolute(link: str, public_url: str | None) -> str:
    """Download links are relative to the API: made absolute when its public URL is configured
    (a notification outlives the request that could have told it)."""
    return urljoin(public_url + "/", link) if public_url else link
