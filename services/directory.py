"""Tenant-scoped lookups by id: in key order for per-request loaders, one row or NOT_FOUND, one
row locked for its update."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

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
Tenanted = TypeVar("Tenanted")  # a model with ``tenant_id`` and ``id`` columns


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


async def locked(
    session: AsyncSession, model: type[Tenanted], tenant_id: uuid.UUID, key: uuid.UUID
) -> Tenanted | None:
    """The tenant's row, locked (FOR UPDATE) until the transaction ends; None when there is
    none."""
    table: Any = model
    return await session.scalar(
        select(model).where(table.tenant_id == tenant_id, table.id == key).with_for_update()
    )


async def _linked_to_classrooms(
    session: AsyncSession,
    link: InstrumentedAttribute[uuid.UUID],
    order: InstrumentedAttribute[str],
    tenant_id: uuid.UUID,
    classroom_ids: Sequence[uuid.UUID],
) -> list[list[Any]]:
    """Each classroom's rows that ``link``, a column of a (tenant_id, classroom_id, …) link
    table, points to, ordered on ``order``; one list per classroom, in key order."""
    table, model = link.class_, order.class_
    rows = await session.execute(
        select(table.classroom_id, model)
        .join(model, model.id == link)
        .where(table.tenant_id == tenant_id, table.classroom_id.in_(set(classroom_ids)))
        .order_by(order)
    )
    by_classroom: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for classroom_id, row in rows:
        by_classroom[classroom_id].append(row)
    return [by_classroom.get(key, []) for key in classroom_ids]


async def tenant_by_id(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant | None:
    return await session.get(Tenant, tenant_id)


async def subjects_by_classroom_ids(
    session: AsyncSession, tenant_id: uuid.UUID, classroom_ids: Sequence[uuid.UUID]
) -> list[list[Subject]]:
    """Each classroom's subjects by name, in key order."""
    link = ClassroomSubject.subject_id
    return await _linked_to_classrooms(session, link, Subject.name, tenant_id, classroom_ids)


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
    link = TeacherAssignment.teacher_id
    return await _linked_to_classrooms(session, link, User.email, tenant_id, classroom_ids)
