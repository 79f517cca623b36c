"""Importing a roster: the request (a ``RosterImport`` row holding the file), and the job that
applies it in chunks, updating the row as it goes.

A row creates its student (and their account, without a password), or moves or renames the
student its email names, and makes ``teacher_email`` (created when new) a teacher of the
classroom; a classroom named but missing is created, teaching every subject of the school.
Applying is idempotent: what a row asks for and already holds counts as ``unchanged``. Each
chunk commits with the row's progress, so a retried job resumes after the last chunk that
committed; a dry run applies every chunk in one transaction and rolls it back.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from arq.connections import ArqRedis
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services import audit
from services.access import Access
from services.administration import (
    Followers,
    add_classroom,
    after_roster_changed,
    tenant_subject_ids,
)
from services.certificate_files import clean_file_name
from services.directory import locked
from services.models import (
    AuditAction,
    Classroom,
    Role,
    RosterImport,
    RosterImportStatus,
    Student,
    TeacherAssignment,
    User,
)
from services.platform.db import SessionFactory
from services.platform.errors import Invalid, NotFound
from services.queue import IMPORT_ROSTER, enqueue_row_job
from services.rosters import MAX_FILE_BYTES, RosterRow, RowError, parse_roster

CHUNK_ROWS = 1000
FINISHED = frozenset({RosterImportStatus.SUCCEEDED, RosterImportStatus.FAILED})


async def request_import(
    *,
    session_factory: SessionFactory,
    access: Access,
    queue: ArqRedis,
    file_name: str,
    data: bytes,
    dry_run: bool,
    origin: audit.Origin,
) -> RosterImport:
    """Keep the file and queue its import; the row it returns reports the progress."""
    access.ensure_admin("import rosters")
    if len(data) > MAX_FILE_BYTES:
        raise Invalid("file", f"A roster is at most {MAX_FILE_BYTES // (1024 * 1024)} MB.")
    if not data.strip():
        raise Invalid("file", "The file is empty: it needs a header row and the roster.")
    tenant_id = access.tenant_id
    try:
        file_name = clean_file_name(file_name)
    except Invalid:
        file_name = "roster.csv"  # the name is only shown back: a missing one is no error
    async with session_factory() as session:
        async with session.begin():
            roster = RosterImport(
                tenant_id=tenant_id,
                requested_by=access.viewer.user_id,
                file_name=file_name,
                sha256=hashlib.sha256(data).hexdigest(),
                dry_run=dry_run,
                source=data,
                status=RosterImportStatus.PENDING,
                processed_rows=0,
                created=0,
                updated=0,
                unchanged=0,
                errors=[],
            )
            session.add(roster)
            await session.flush()
            audit.record(
                session,
                tenant_id=tenant_id,
                user_id=access.viewer.user_id,
                action=AuditAction.ROSTER_IMPORT,
                resource="roster_import",
                resource_id=str(roster.id),
                success=True,
                origin=origin,
                details={
                    "file_name": roster.file_name,
                    "sha256": roster.sha256,
                    "size": len(data),
                    "dry_run": dry_run,
                },
            )
        await enqueue_row_job(queue, session, IMPORT_ROSTER, tenant_id, roster.id)
    return roster


async def roster_import(
    session: AsyncSession, *, access: Access, import_id: uuid.UUID
) -> RosterImport | None:
    """An import of the viewer's tenant (admins only); None when there is none by that id."""
    access.ensure_admin("read roster imports")
    return await session.scalar(
        select(RosterImport).where(
            RosterImport.tenant_id == access.tenant_id, RosterImport.id == import_id
        )
    )


@dataclass(slots=True)
class ChunkResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    classroom_ids: set[uuid.UUID] = field(default_factory=set)
    changed_students: list[uuid.UUID] = field(default_factory=list)
    assigned_teachers: set[uuid.UUID] = field(default_factory=set)


class _School:
    """What one chunk reads of the tenant before applying its rows: one statement each."""

    def __init__(self, tenant_id: uuid.UUID, subject_ids: Sequence[uuid.UUID]) -> None:
        self.tenant_id = tenant_id
        self.subject_ids = subject_ids
        self.accounts: dict[str, User] = {}
        self.students: dict[uuid.UUID, Student] = {}
        self.classrooms: dict[str, uuid.UUID] = {}
        self.taught: set[tuple[uuid.UUID, uuid.UUID]] = set()

    async def read(self, session: AsyncSession, rows: Sequence[RosterRow]) -> None:
        emails = {row.student_email for row in rows} | {
            row.teacher_email for row in rows if row.teacher_email
        }
        self.accounts = {
            account.email: account
            for account in await session.scalars(
                select(User).where(User.tenant_id == self.tenant_id, User.email.in_(emails))
            )
        }
        user_ids = [account.id for account in self.accounts.values()]
        self.students = {
            student.user_id: student
            for student in await session.scalars(
                select(Student).where(
                    Student.tenant_id == self.tenant_id, Student.user_id.in_(user_ids)
                )
            )
            if student.user_id is not None
        }
        names = {row.classroom for row in rows}
        self.classrooms = {
            name: key
            for name, key in await session.execute(
                select(Classroom.name, Classroom.id).where(
                    Classroom.tenant_id == self.tenant_id, Classroom.name.in_(names)
                )
            )
        }
        self.taught = {
            (teacher, room)
            for teacher, room in await session.execute(
                select(TeacherAssignment.teacher_id, TeacherAssignment.classroom_id).where(
                    TeacherAssignment.tenant_id == self.tenant_id,
                    TeacherAssignment.teacher_id.in_(user_ids),
                )
            )
        }

    async def classroom(self, session: AsyncSession, name: str) -> uuid.UUID:
        if (known := self.classrooms.get(name)) is None:
            created = await add_classroom(
                session, tenant_id=self.tenant_id, name=name, subject_ids=self.subject_ids
            )
            known = self.classrooms[name] = created.id
        return known


async def apply_chunk(
    session: AsyncSession, *, school: _School, rows: Sequence[RosterRow]
) -> ChunkResult:
    """Apply ``rows`` in ``session``'s transaction: a few statements whatever their number."""
    result = ChunkResult()
    await school.read(session, rows)
    new_users: list[dict[str, object]] = []
    new_students: list[dict[str, object]] = []
    changed: list[dict[str, object]] = []
    assignments: list[dict[str, object]] = []

    def new_account(email: str, role: Role) -> User:
        account = User(id=uuid.uuid4(), tenant_id=school.tenant_id, email=email, role=role)
        school.accounts[email] = account
        new_users.append(
            {"id": account.id, "tenant_id": account.tenant_id, "email": email, "role": role}
        )
        return account

    for row in rows:
        account = school.accounts.get(row.student_email)
        if account is not None and account.role is not Role.STUDENT:
            result.errors.append(
                RowError(
                    row.line,
                    "student_email",
                    f"{row.student_email} is a {account.role.value.lower()}'s account, not a "
                    "student's.",
                )
            )
            continue
        teacher = school.accounts.get(row.teacher_email) if row.teacher_email else None
        if teacher is not None and teacher.role is not Role.TEACHER:
            result.errors.append(
                RowError(
                    row.line,
                    "teacher_email",
                    f"{row.teacher_email} is a {teacher.role.value.lower()}'s account, not a "
                    "teacher's.",
                )
            )
            continue
        classroom_id = await school.classroom(session, row.classroom)
        outcome = "unchanged"
        student = school.students.get(account.id) if account is not None else None
        if student is None:
            account = account or new_account(row.student_email, Role.STUDENT)
            student = Student(
                id=uuid.uuid4(),
                tenant_id=school.tenant_id,
                classroom_id=classroom_id,
                user_id=account.id,
                name=row.student_name,
            )
            school.students[account.id] = student
            new_students.append(
                {
                    "id": student.id,
                    "tenant_id": school.tenant_id,
                    "classroom_id": classroom_id,
                    "user_id": account.id,
                    "name": row.student_name,
                }
            )
            outcome = "created"
        elif (student.name, student.classroom_id) != (row.student_name, classroom_id):
            result.classroom_ids.add(student.classroom_id)
            result.changed_students.append(student.id)
            changed.append(
                {"id": student.id, "name": row.student_name, "classroom_id": classroom_id}
            )
            outcome = "updated"
        if row.teacher_email:
            teacher = teacher or new_account(row.teacher_email, Role.TEACHER)
            if (teacher.id, classroom_id) not in school.taught:
                school.taught.add((teacher.id, classroom_id))
                result.assigned_teachers.add(teacher.id)
                assignments.append(
                    {
                        "tenant_id": school.tenant_id,
                        "teacher_id": teacher.id,
                        "classroom_id": classroom_id,
                    }
                )
                outcome = "updated" if outcome == "unchanged" else outcome
        if outcome != "unchanged":
            result.classroom_ids.add(classroom_id)
        setattr(result, outcome, getattr(result, outcome) + 1)
    if new_users:
        await session.execute(insert(User), new_users)
    if new_students:
        await session.execute(insert(Student), new_students)
    if changed:
        await session.execute(update(Student), changed)
    if assignments:
        await session.execute(insert(TeacherAssignment).on_conflict_do_nothing(), assignments)
    return result


async def _running(
    session: AsyncSession, tenant_id: uuid.UUID, import_id: uuid.UUID
) -> RosterImport:
    """The import a running job updates, locked; NOT_FOUND once it was deleted meanwhile."""
    roster = await locked(session, RosterImport, tenant_id, import_id)
    if roster is None:
        raise NotFound("The roster import was deleted while it ran.")
    return roster


def _add(roster: RosterImport, result: ChunkResult, processed: int) -> None:
    roster.processed_rows += processed
    roster.created += result.created
    roster.updated += result.updated
    roster.unchanged += result.unchanged
    if result.errors:
        roster.errors = sorted(
            [*roster.errors, *(error.as_json() for error in result.errors)],
            key=lambda error: error["line"],
        )


def _finish(roster: RosterImport, status: RosterImportStatus) -> None:
    roster.status = status
    roster.completed_at = datetime.now(UTC)
    roster.source = None


async def run_import(
    *,
    session_factory: SessionFactory,
    tenant_id: uuid.UUID,
    import_id: uuid.UUID,
    followers: Followers,
) -> RosterImportStatus | None:
    """Apply one import to its end; the status it ended in (None when there is no such
    import). Safe to run again: a finished import is left as it is, a started one resumes."""
    async with session_factory() as session:
        async with session.begin():
            roster = await locked(session, RosterImport, tenant_id, import_id)
            if roster is None:
                return None
            if roster.status in FINISHED or roster.source is None:  # the source goes at the end
                return roster.status
            source = roster.source
        # Reading and checking 10,000 rows is ~0.1 s of CPU: off the worker's event loop.
        parsed = await asyncio.to_thread(parse_roster, source)
        async with session.begin():
            roster = await _running(session, tenant_id, import_id)
            if roster.status is RosterImportStatus.PENDING or roster.dry_run:
                # A dry run that was cut short starts over: nothing of it was kept.
                roster.status = RosterImportStatus.RUNNING
                roster.total_rows = parsed.total_rows
                roster.processed_rows = roster.created = roster.updated = roster.unchanged = 0
                roster.errors = [error.as_json() for error in parsed.errors]
            if not parsed.readable:
                _finish(roster, RosterImportStatus.FAILED)
                return roster.status
            resume_at, dry_run = roster.processed_rows, roster.dry_run
            subjects = await tenant_subject_ids(session, tenant_id)
        school = _School(tenant_id, subjects)
        chunks = [
            parsed.rows[start : start + CHUNK_ROWS]
            for start in range(resume_at, len(parsed.rows), CHUNK_ROWS)
        ]
        if dry_run:
            await _dry_run(session_factory, school, tenant_id, import_id, chunks)
        else:
            for chunk in chunks:
                async with session.begin():
                    result = await apply_chunk(session, school=school, rows=chunk)
                    _add(await _running(session, tenant_id, import_id), result, len(chunk))
                await after_roster_changed(
                    session,
                    followers,
                    tenant_id=tenant_id,
                    classroom_ids=sorted(result.classroom_ids),
                    student_ids=result.changed_students,
                    teacher_ids=sorted(result.assigned_teachers),
                )
        async with session.begin():
            roster = await _running(session, tenant_id, import_id)
            _finish(roster, RosterImportStatus.SUCCEEDED)
            return roster.status


async def _dry_run(
    session_factory: SessionFactory,
    school: _School,
    tenant_id: uuid.UUID,
    import_id: uuid.UUID,
    chunks: Sequence[Sequence[RosterRow]],
) -> None:
    """Every chunk applied in one transaction that is rolled back; the progress is written
    beside it, in transactions of its own."""
    async with session_factory() as work, session_factory() as progress:
        transaction = await work.begin()
        try:
            for chunk in chunks:
                result = await apply_chunk(work, school=school, rows=chunk)
                async with progress.begin():
                    _add(await _running(progress, tenant_id, import_id), result, len(chunk))
        finally:
            await transaction.rollback()


async def mark_failed(
    *, session_factory: SessionFactory, tenant_id: uuid.UUID, import_id: uuid.UUID, error: str
) -> None:
    """Every try of the import failed: the import says so instead of staying RUNNING."""
    async with session_factory() as session, session.begin():
        roster = await locked(session, RosterImport, tenant_id, import_id)
        if roster is None or roster.status in FINISHED:
            return
        roster.errors = [
            *roster.errors,
            RowError(0, None, f"The import stopped: {error}. Rows before it were kept.").as_json(),
        ]
        _finish(roster, RosterImportStatus.FAILED)
