"""Whether a token still speaks for its account.

A token issued before the account's last password change, for an account since disabled or
deleted, or whose role or student link is not the account's (a forged claim, or a role changed
since it was issued), is refused: what a request may do is the account's, never the token's.
The account's state is read through the cache (tag ``user:<id>``): a request pays one Redis
round trip, and a change reaches every process at its next request, since the change
invalidates the tag before it is reported done.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth import Viewer
from services.models import Role, Student, User
from services.platform.cache import Cache, Spec
from services.platform.db import SessionFactory
from services.platform.errors import Unauthenticated

KIND = "credentials"


def user_tag(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a token is checked against; ``changed_at_ms`` is None while never changed."""

    active: bool
    changed_at_ms: int | None
    role: Role | None = None
    student_id: uuid.UUID | None = None


async def ensure_current(viewer: Viewer, *, cache: Cache, session_factory: SessionFactory) -> None:
    """Unauthenticated when ``viewer``'s token no longer speaks for its account."""

    async def read(session: AsyncSession) -> Credentials:
        row = (
            await session.execute(
                select(User.active, User.credentials_changed_at, User.role, Student.id)
                .outerjoin(Student, Student.user_id == User.id)
                .where(User.tenant_id == viewer.tenant_id, User.id == viewer.user_id)
            )
        ).first()
        if row is None:
            return Credentials(active=False, changed_at_ms=None)
        changed = row.credentials_changed_at
        return Credentials(
            active=row.active,
            changed_at_ms=None if changed is None else int(changed.timestamp() * 1000),
            role=row.role,
            student_id=row.id,
        )

    found = await cache.fetch(
        Spec(
            tenant_id=viewer.tenant_id,
            kind=KIND,
            key=str(viewer.user_id),
            tags=(user_tag(viewer.user_id),),
            value_type=Credentials,
            compute=lambda: session_factory.reading(read),
        )
    )
    credentials = found.value
    if not credentials.active:
        raise Unauthenticated("This account is disabled or no longer exists.")
    changed = credentials.changed_at_ms
    if changed is not None and (viewer.issued_at_ms is None or viewer.issued_at_ms < changed):
        raise Unauthenticated("The password was changed after this token was issued; log in again.")
    if (viewer.role, viewer.student_id) != (credentials.role, credentials.student_id):
        raise Unauthenticated(
            "This token's role is not the account's (changed since); log in again."
        )
