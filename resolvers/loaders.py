"""Per-request dataloaders: every entity reached through a list is fetched in one batch.

Each batch opens its own short session, because sibling fields resolve concurrently and one
AsyncSession cannot run two statements at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncSession

from services import directory
from services.models import Classroom, Student, Subject, Tenant, User
from services.platform.db import SessionFactory
from services.platform.errors import NotFound

Key = TypeVar("Key")
Value = TypeVar("Value")


def session_loader(
    session_factory: SessionFactory,
    fetch: Callable[[AsyncSession, Sequence[Key]], Awaitable[Sequence[Value]]],
) -> DataLoader[Key, Value]:
    """A DataLoader whose batch function gets a fresh session and the keys (a read: tried
    again on a transient connection error)."""

    async def batch(keys: list[Key]) -> list[Value]:
        return list(await session_factory.reading(lambda session: fetch(session, keys)))

    return DataLoader(batch)


async def load_existing(loader: DataLoader[Key, Value | None], key: Key, what: str) -> Value:
    """The row, or NOT_FOUND naming ``what`` (it was deleted while referenced)."""
    found = await loader.load(key)
    if found is None:
        raise NotFound(f"The {what} no longer exists.")
    return found


def _by_ids(model: Any, tenant_id: uuid.UUID) -> Callable[..., Awaitable[Sequence[Any]]]:
    async def fetch(session: AsyncSession, ids: Sequence[uuid.UUID]) -> Sequence[Any]:
        return await directory.rows_by_ids(session, model, tenant_id, ids)

    return fetch


@dataclass(frozen=True, slots=True)
class Loaders:
    students: DataLoader[uuid.UUID, Student | None]
    classrooms: DataLoader[uuid.UUID, Classroom | None]
    subjects: DataLoader[uuid.UUID, Subject | None]
    users: DataLoader[uuid.UUID, User | None]
    tenants: DataLoader[uuid.UUID, Tenant | None]
    classroom_subjects: DataLoader[uuid.UUID, list[Subject]]
    classroom_teachers: DataLoader[uuid.UUID, list[User]]

    @classmethod
    def create(cls, session_factory: SessionFactory, tenant_id: uuid.UUID) -> Loaders:
        async def tenants(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[Tenant | None]:
            return [await directory.tenant_by_id(session, key) for key in ids]

        async def subjects(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[list[Subject]]:
            return await directory.subjects_by_classroom_ids(session, tenant_id, ids)

        async def teachers(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[list[User]]:
            return await directory.teachers_by_classroom_ids(session, tenant_id, ids)

        return cls(
            students=session_loader(session_factory, _by_ids(Student, tenant_id)),
            classrooms=session_loader(session_factory, _by_ids(Classroom, tenant_id)),
            subjects=session_loader(session_factory, _by_ids(Subject, tenant_id)),
            users=session_loader(session_factory, _by_ids(User, tenant_id)),
            tenants=session_loader(session_factory, tenants),
            classroom_subjects=session_loader(session_factory, subjects),
            classroom_teachers=session_loader(session_factory, teachers),
        )
