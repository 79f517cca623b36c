"""School administration: roster imports and password resets."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    DateTime,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base, owner_fk, tenant_fk, uuid_pk


class RosterImportStatus(StrEnum):
    """An import's way: PENDING (queued) → RUNNING → SUCCEEDED (rows with errors included),
    or FAILED (a header without the required columns, or every try of the job failed)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class RosterImport(Base):
    """One uploaded roster and what importing it did, updated as the job goes.

    The file's bytes are kept in ``source`` until the job ends: a roster is at most a few MB,
    and in the row it commits with the request and needs no object-store clean-up.
    """

    __tablename__ = "roster_imports"
    __table_args__ = (Index("ix_roster_imports_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    requested_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    dry_run: Mapped[bool]
    source: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[RosterImportStatus] = mapped_column(
        Enum(RosterImportStatus, name="roster_import_status")
    )
    total_rows: Mapped[int | None]
    processed_rows: Mapped[int] = mapped_column(server_default="0")
    created: Mapped[int] = mapped_column(server_default="0")
    updated: Mapped[int] = mapped_column(server_default="0")
    unchanged: Mapped[int] = mapped_column(server_default="0")
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PasswordReset(Base):
    """A one-time password-reset token, kept as its SHA-256 only: whoever reads the table
    cannot use it. Spent by ``used_at``; a newer request or a reset revokes the rest."""

    __tablename__ = "password_resets"
    __table_args__ = (Index("ix_password_resets_user", "tenant_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    user_id: Mapped[uuid.UUID] = owner_fk("users.id")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
