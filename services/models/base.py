"""The declarative base, the two columns every table shares (its id, its tenant), and the key
to a row another belongs to."""

from __future__ import annotations

import uuid

from sqlalchemy import (
    ForeignKey,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )


def tenant_fk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )


def owner_fk(target: str, *, primary_key: bool = False) -> Mapped[uuid.UUID]:
    """The key of the row (``"table.id"``) this one belongs to: deleted with it."""
    return mapped_column(ForeignKey(target, ondelete="CASCADE"), primary_key=primary_key)


class Base(DeclarativeBase):
    pass
