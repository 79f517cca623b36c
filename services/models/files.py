"""Files: medical certificates and exports of attendance."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base, owner_fk, tenant_fk, uuid_pk


class FileStatus(StrEnum):
    """A certificate's way: PENDING (stored, queued) → SCANNING → AWAITING_REVIEW, then
    APPROVED or REJECTED by a reviewer; QUARANTINED when the scan finds a threat."""

    PENDING = "PENDING"
    SCANNING = "SCANNING"
    AWAITING_REVIEW = "AWAITING_REVIEW"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    QUARANTINED = "QUARANTINED"


class MedicalCertificate(Base):
    """An uploaded certificate; its bytes live in the object store under ``object_key``."""

    __tablename__ = "medical_certificates"
    __table_args__ = (
        Index("ix_medical_certificates_student", "tenant_id", "student_id", "uploaded_at", "id"),
        Index("ix_medical_certificates_status", "tenant_id", "status", "uploaded_at", "id"),
        CheckConstraint("covers_from <= covers_to", name="ck_medical_certificates_covers"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    student_id: Mapped[uuid.UUID] = owner_fk("students.id")
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    file_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    object_key: Mapped[str] = mapped_column(String(300), unique=True)
    status: Mapped[FileStatus] = mapped_column(Enum(FileStatus, name="file_status"))
    covers_from: Mapped[date] = mapped_column(Date)
    covers_to: Mapped[date] = mapped_column(Date)
    description: Mapped[str | None] = mapped_column(Text)
    scan_result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    scanned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reviewed_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    excused_records: Mapped[int | None]
    uploaded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class ExportFormat(StrEnum):
    CSV = "CSV"
    JSON = "JSON"


class ExportStatus(StrEnum):
    """An export's way: PENDING (queued) → RUNNING → READY (stored, linked), or FAILED;
    a READY one is EXPIRED (its file deleted) after the retention time."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    READY = "READY"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


class Export(Base):
    """One requested export of attendance; its file lives in the object store under
    ``object_key`` once READY."""

    __tablename__ = "exports"
    __table_args__ = (
        Index("ix_exports_requester_created", "tenant_id", "requested_by", "created_at", "id"),
        # The expiry job's scan: READY exports by age, across tenants.
        Index(
            "ix_exports_ready_completed", "completed_at", postgresql_where=text("status = 'READY'")
        ),
        CheckConstraint("date_from <= date_to", name="ck_exports_range"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    requested_by: Mapped[uuid.UUID] = owner_fk("users.id")
    format: Mapped[ExportFormat] = mapped_column(Enum(ExportFormat, name="export_format"))
    date_from: Mapped[date] = mapped_column(Date)
    date_to: Mapped[date] = mapped_column(Date)
    status: Mapped[ExportStatus] = mapped_column(Enum(ExportStatus, name="export_status"))
    object_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    row_count: Mapped[int | None]
    size: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
