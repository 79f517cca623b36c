"""Tenant-scoped lookups by id, in key order, for per-request loaders."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import (
    Classroom,
    ClassroomSubject,
    Student,
    Subject,
    TeacherAssignment,
    Tenant,
    User,
)
from services.platform.errors import NotFound
from services.platform.keyset import KeysetPage, keyset_page

Model = TypeVar("Model", Classroom, Student, Subject, User)
Item = TypeVar("Item")


async def rows_by_ids(
    session: AsyncSession, model: type[Model], tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[Model | None]:
    """One statement for all ids; another tenant's rows come back as None."""
    found: dict[Any, Model] = {
        row.id: row
        for row in await session.scalars(
            select(model).where(model.tenant_id == tenant_id, model.id.in_(set(ids)))
        )
    }
    return [found.get(key) for key in ids]


async def existing(
    session: AsyncSession, model: type[Model], tenant_id: uuid.UUID, key: uuid.UUID
) -> Model:
    """The tenant's row, or NOT_FOUND. Callers check the viewer's rights (cached reads do it
    before and after computing, since one computation serves every viewer)."""
    (row,) = await rows_by_ids(session, model, tenant_id, [key])
    if row is None:
        raise NotFound(f"No such {model.__name__.lower()}.")
    return row


def _grouped(
    pairs: Iterable[Row[tuple[uuid.UUID, Item]]], keys: Sequence[uuid.UUID]
) -> list[list[Item]]:
    """(key, item) pairs as one list per key, in key order; the pairs' order is kept."""
    by_key: dict[uuid.UUID, list[Item]] = defaultdict(list)
    for key, item in pairs:
        by_key[key].append(item)
    return [by_key.get(key, []) for key in keys]


async def tenant_by_id(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant | None:
    return await session.get(Tenant, tenant_id)


async def subjects_by_classroom_ids(
    session: AsyncSession, tenant_id: uuid.UUID, classroom_ids: Sequence[uuid.UUID]
) -> list[list[Subject]]:
    """Each classroom's subjects by name, in key order."""
    rows = await session.execute(
        select(ClassroomSubject.classroom_id, Subject)
        .join(Subject, Subject.id == ClassroomSubject.subject_id)
        .where(
            ClassroomSubject.tenant_id == tenant_id,
            ClassroomSubject.classroom_id.in_(set(classroom_ids)),
        )
        .order_by(Subject.name)
    )
    return _grouped(rows, classroom_ids)


async def students_page(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    classroom_id: uuid.UUID,
    after: tuple[str, uuid.UUID] | None,
    limit: int,
) -> KeysetPage[Student]:
    """A classroom's students by name then id, after a (name, id) keyset; and the total."""
    scope = [Student.tenant_id == tenant_id, Student.classroom_id == classroom_id]
    order = (Student.name, Student.id)
    return await keyset_page(session, Student, scope, order=order, after=after, limit=limit)


async def classrooms_page(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    among: frozenset[uuid.UUID] | None,
    after: tuple[str, uuid.UUID] | None,
    limit: int,
) -> KeysetPage[Classroom]:
    """The tenant's classrooms (only those ``among``, when given) by name then id, after a
    (name, id) keyset; and how many there are."""
    scope = [Classroom.tenant_id == tenant_id]
    if among is not None:
        scope.append(Classroom.id.in_(among))
    order = (Classroom.name, Classroom.id)
    return await keyset_page(session, Classroom, scope, order=order, after=after, limit=limit)


async def teachers_by_classroom_ids(
    session: AsyncSession, tenant_id: uuid.UUID, classroom_ids: Sequence[uuid.UUID]
) -> list[list[User]]:
    """Each classroom's teachers by email, in key order."""
    rows = await session.execute(
        select(TeacherAssignment.classroom_id, User)
        .join(User, User.id == TeacherAssignment.teacher_id)
        .where(
            TeacherAssignment.tenant_id == tenant_id,
            TeacherAssignment.classroom_id.in_(set(classroom_ids)),
        )
        .order_by(User.email)
    )
    return _grouped(rows, classroom_ids)
