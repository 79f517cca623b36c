"""Running a school: its classrooms, students, teachers and attendance thresholds.

Admins only, within their tenant, each change audited in its own transaction. What a change
makes stale is invalidated once it has committed (queued durably when Redis is down): a new or
moved student changes class sizes, averages and ranks, so the classrooms' tags go, with the
statistics refresh that recomputes the snapshots; new thresholds change every student's
standing, so the tenant's ``statistics`` tag goes (every cached standing carries it) and every
student's alert check runs against them.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services import audit
from services.access import Access, teacher_tag
from services.cached_reads import STATISTICS_PENDING, STATISTICS_TAG, classroom_tag, student_tag
from services.directory import existing, locked
from services.metrics import Thresholds
from services.models import (
    AuditAction,
    Classroom,
    ClassroomSubject,
    Role,
    Student,
    Subject,
    TeacherAssignment,
    Tenant,
    User,
)
from services.names import CLASSROOM_NAME_LENGTH, PERSON_NAME_LENGTH, clean_email, clean_name
from services.platform.cache import Cache
from services.platform.db import SessionFactory
from services.platform.errors import Invalid, NotFound
from services.queue import (
    invalidate_or_schedule,
    schedule_statistics_refresh,
    schedule_threshold_check,
)
from services.tenants import tenant_thresholds

THRESHOLD_CHECK_BATCH = 500
_CENTS = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Followers:
    """What every administration change hands on once it has committed."""

    cache: Cache
    queue: ArqRedis
    refresh_delay_seconds: int
    now: float


async def _account(session: AsyncSession, tenant_id: uuid.UUID, email: str) -> User | None:
    return await session.scalar(
        select(User).where(User.tenant_id == tenant_id, User.email == email)
    )


def _audited(
    session: AsyncSession,
    access: Access,
    origin: audit.Origin,
    action: AuditAction,
    *,
    resource: str,
    resource_id: str,
    details: Mapping[str, Any],
) -> None:
    """The admin's change, audited in ``session``'s transaction (it commits with the change)."""
    audit.record(
        session,
        tenant_id=access.tenant_id,
        user_id=access.viewer.user_id,
        action=action,
        resource=resource,
        resource_id=resource_id,
        success=True,
        origin=origin,
        details=details,
    )


async def tenant_subject_ids(session: AsyncSession, tenant_id: uuid.UUID) -> list[uuid.UUID]:
    return list(await session.scalars(select(Subject.id).where(Subject.tenant_id == tenant_id)))


async def classroom_named(
    session: AsyncSession, tenant_id: uuid.UUID, name: str
) -> Classroom | None:
    return await session.scalar(
        select(Classroom).where(Classroom.tenant_id == tenant_id, Classroom.name == name)
    )


async def add_classroom(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str, subject_ids: Sequence[uuid.UUID]
) -> Classroom:
    """A classroom teaching ``subject_ids``, in ``session``'s transaction."""
    classroom = Classroom(tenant_id=tenant_id, name=name)
    session.add(classroom)
    await session.flush()
    if subject_ids:
        await session.execute(
            insert(ClassroomSubject).values(
                [
                    {"tenant_id": tenant_id, "classroom_id": classroom.id, "subject_id": subject}
                    for subject in subject_ids
                ]
            )
        )
    return classroom


async def after_roster_changed(
    session: AsyncSession,
    followers: Followers,
    *,
    tenant_id: uuid.UUID,
    classroom_ids: Sequence[uuid.UUID],
    student_ids: Sequence[uuid.UUID] = (),
    teacher_ids: Sequence[uuid.UUID] = (),
) -> None:
    """Class sizes, averages and ranks of these classrooms changed: their cached reads go,
    and the statistics refresh that recomputes the snapshots is queued; so do the cached
    classroom sets of teachers given new classes. ``session`` must have no transaction open."""
    tags = [
        *map(classroom_tag, dict.fromkeys(classroom_ids)),
        *map(student_tag, student_ids),
        *map(teacher_tag, dict.fromkeys(teacher_ids)),
    ]
    if not tags:
        return
    await invalidate_or_schedule(
        followers.cache,
        followers.queue,
        session,
        tenant_id=tenant_id,
        tags=tags,
        touch=(STATISTICS_PENDING,),
    )
    await schedule_statistics_refresh(
        followers.queue, session, delay_seconds=followers.refresh_delay_seconds, now=followers.now
    )


async def create_classroom(
    *,
    session_factory: SessionFactory,
    access: Access,
    name: str,
    subject_ids: Sequence[uuid.UUID] | None,
    origin: audit.Origin,
) -> Classroom:
    """A new classroom, its name unique in the tenant. It teaches ``subject_ids``, or every
    subject of the school when None (so it can be marked at once)."""
    access.ensure_admin("create classrooms")
    tenant_id = access.tenant_id
    name = clean_name(name, field="input.name", limit=CLASSROOM_NAME_LENGTH)
    async with session_factory() as session, session.begin():
        if await classroom_named(session, tenant_id, name) is not None:
            raise Invalid("input.name", f"A classroom named {name!r} already exists.")
        known = await tenant_subject_ids(session, tenant_id)
        if subject_ids is None:
            subjects = known
        else:
            for index, subject in enumerate(subject_ids):
                if subject not in known:
                    raise Invalid(f"input.subjectIds[{index}]", "No such subject in this school.")
            subjects = list(dict.fromkeys(subject_ids))
        classroom = await add_classroom(
            session, tenant_id=tenant_id, name=name, subject_ids=subjects
        )
        _audited(
            session,
            access,
            origin,
            AuditAction.CLASSROOM_CREATE,
            resource="classroom",
            resource_id=str(classroom.id),
            details={"name": name, "subjects": len(subjects)},
        )
    return classroom


async def create_student(
    *,
    session_factory: SessionFactory,
    access: Access,
    name: str,
    email: str,
    classroom_id: uuid.UUID,
    origin: audit.Origin,
    followers: Followers,
) -> Student:
    """A student in a classroom, with an account of their own that has no password until they
    set one through the reset flow."""
    access.ensure_admin("create students")
    tenant_id = access.tenant_id
    name = clean_name(name, field="input.name", limit=PERSON_NAME_LENGTH)
    email = clean_email(email, field="input.email")
    async with session_factory() as session:
        async with session.begin():
            await existing(session, Classroom, tenant_id, classroom_id)
            if await _account(session, tenant_id, email) is not None:
                raise Invalid("input.email", f"An account with the email {email} already exists.")
            account = User(tenant_id=tenant_id, email=email, role=Role.STUDENT)
            session.add(account)
            await session.flush()
            student = Student(
                tenant_id=tenant_id, classroom_id=classroom_id, user_id=account.id, name=name
            )
            session.add(student)
            await session.flush()
            _audited(
                session,
                access,
                origin,
                AuditAction.STUDENT_CREATE,
                resource="student",
                resource_id=str(student.id),
                details={"email": email, "classroom_id": str(classroom_id)},
            )
        await after_roster_changed(
            session, followers, tenant_id=tenant_id, classroom_ids=[classroom_id]
        )
    return student


async def move_student(
    *,
    session_factory: SessionFactory,
    access: Access,
    student_id: uuid.UUID,
    classroom_id: uuid.UUID,
    origin: audit.Origin,
    followers: Followers,
) -> Student:
    """The student joins another classroom. Their records stay as they were taken (each keeps
    the classroom it was marked in); from now on their rate counts in the new class."""
    access.ensure_admin("move students")
    tenant_id = access.tenant_id
    async with session_factory() as session:
        async with session.begin():
            student = await locked(session, Student, tenant_id, student_id)
            if student is None:
                raise NotFound("No such student.")
            await existing(session, Classroom, tenant_id, classroom_id)
            previous = student.classroom_id
            if previous == classroom_id:
                return student
            student.classroom_id = classroom_id
            _audited(
                session,
                access,
                origin,
                AuditAction.STUDENT_MOVE,
                resource="student",
                resource_id=str(student_id),
                details={"from": str(previous), "to": str(classroom_id)},
            )
        await after_roster_changed(
            session,
            followers,
            tenant_id=tenant_id,
            classroom_ids=[previous, classroom_id],
            student_ids=[student_id],
        )
    return student


async def assign_teacher(
    *,
    session_factory: SessionFactory,
    access: Access,
    classroom_id: uuid.UUID,
    email: str,
    origin: audit.Origin,
    followers: Followers,
) -> Classroom:
    """The teacher with this email teaches the classroom from now on; their account is
    created (without a password) when the school has none by that email."""
    access.ensure_admin("assign teachers")
    tenant_id = access.tenant_id
    email = clean_email(email, field="email")
    async with session_factory() as session:
        async with session.begin():
            classroom = await existing(session, Classroom, tenant_id, classroom_id)
            teacher, created = await ensure_teacher(session, tenant_id=tenant_id, email=email)
            if teacher is None:
                raise Invalid("email", f"{email} is not a teacher's account; only teachers teach.")
            await session.execute(
                insert(TeacherAssignment)
                .values(tenant_id=tenant_id, teacher_id=teacher.id, classroom_id=classroom_id)
                .on_conflict_do_nothing()
            )
            _audited(
                session,
                access,
                origin,
                AuditAction.TEACHER_ASSIGN,
                resource="classroom",
                resource_id=str(classroom_id),
                details={"email": email, "teacher_id": str(teacher.id), "account_created": created},
            )
        # The teacher's cached classroom set must include this class from their next request.
        await invalidate_or_schedule(
            followers.cache,
            followers.queue,
            session,
            tenant_id=tenant_id,
            tags=[teacher_tag(teacher.id)],
        )
    return classroom


async def ensure_teacher(
    session: AsyncSession, *, tenant_id: uuid.UUID, email: str
) -> tuple[User | None, bool]:
    """The teacher account with this email, created when there is none; (None, False) when
    the email belongs to an account of another role. The second value says it was created."""
    account = await _account(session, tenant_id, email)
    if account is not None:
        return (account if account.role is Role.TEACHER else None), False
    account = User(tenant_id=tenant_id, email=email, role=Role.TEACHER)
    session.add(account)
    await session.flush()
    return account, True


def _percent(value: float, field: str) -> Decimal:
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise Invalid(field, "A threshold is a rate from 0 to 100 (%).")
    # The columns keep two decimals; the order is checked on what is kept.
    return Decimal(repr(value)).quantize(_CENTS, rounding=ROUND_HALF_EVEN)


def _as_text(thresholds: Thresholds) -> dict[str, str]:
    return {
        "mahroom": str(thresholds.mahroom),
        "warning": str(thresholds.warning),
        "tasdiq": str(thresholds.tasdiq),
    }


def check_thresholds(*, mahroom: float, warning: float, tasdiq: float) -> Thresholds:
    """0 ≤ mahroom < warning ≤ tasdiq ≤ 100, to two decimals; VALIDATION_ERROR on the first
    field out of order."""
    kept = Thresholds(
        mahroom=_percent(mahroom, "input.mahroomAtOrBelow"),
        warning=_percent(warning, "input.warningBelow"),
        tasdiq=_percent(tasdiq, "input.tasdiqBelow"),
    )
    if not kept.mahroom < kept.warning:
        raise Invalid(
            "input.warningBelow",
            "warningBelow must be above mahroomAtOrBelow: a barred student is also warned.",
        )
    if not kept.warning <= kept.tasdiq:
        raise Invalid("input.tasdiqBelow", "tasdiqBelow must be at least warningBelow.")
    return kept


async def update_thresholds(
    *,
    session_factory: SessionFactory,
    access: Access,
    mahroom: float,
    warning: float,
    tasdiq: float,
    origin: audit.Origin,
    followers: Followers,
) -> Tenant:
    """New thresholds for the tenant (``check_thresholds``), in force on every standing at
    once: the cached standings go, the class snapshots (students at risk) refresh, and every
    student's alert check runs against the new limits."""
    access.ensure_admin("change the attendance thresholds")
    thresholds = check_thresholds(mahroom=mahroom, warning=warning, tasdiq=tasdiq)
    tenant_id = access.tenant_id
    async with session_factory() as session:
        async with session.begin():
            tenant = await session.scalar(
                select(Tenant).where(Tenant.id == tenant_id).with_for_update()
            )
            if tenant is None:
                raise NotFound("No such tenant.")
            before = tenant_thresholds(tenant)
            tenant.mahroom_threshold = thresholds.mahroom
            tenant.warning_threshold = thresholds.warning
            tenant.tasdiq_threshold = thresholds.tasdiq
            _audited(
                session,
                access,
                origin,
                AuditAction.THRESHOLDS_UPDATE,
                resource="tenant",
                resource_id=str(tenant_id),
                details={"before": _as_text(before), "after": _as_text(thresholds)},
            )
            students = list(
                await session.scalars(select(Student.id).where(Student.tenant_id == tenant_id))
            )
        await invalidate_or_schedule(
            followers.cache, followers.queue, session, tenant_id=tenant_id, tags=[STATISTICS_TAG]
        )
        await schedule_statistics_refresh(
            followers.queue,
            session,
            delay_seconds=followers.refresh_delay_seconds,
            now=followers.now,
        )
        for start in range(0, len(students), THRESHOLD_CHECK_BATCH):
            await schedule_threshold_check(
                followers.queue,
                session,
                tenant_id=tenant_id,
                student_ids=students[start : start + THRESHOLD_CHECK_BATCH],
            )
    return tenant
