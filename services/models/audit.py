"""The audit log, and the trusted documents' allow-list."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base


class AuditAction(StrEnum):
    DATA_EXPORT = "DATA_EXPORT"
    FILE_UPLOAD = "FILE_UPLOAD"
    FILE_DOWNLOAD = "FILE_DOWNLOAD"
    LOGIN_SUCCESS = "LOGIN_SUCCESS"
    LOGIN_FAILURE = "LOGIN_FAILURE"
    PASSWORD_CHANGE = "PASSWORD_CHANGE"
    PROFILE_UPDATE = "PROFILE_UPDATE"
    NOTIFICATION_SENT = "NOTIFICATION_SENT"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    CERTIFICATE_REVIEW = "CERTIFICATE_REVIEW"
    CLASSROOM_CREATE = "CLASSROOM_CREATE"
    STUDENT_CREATE = "STUDENT_CREATE"
    STUDENT_MOVE = "STUDENT_MOVE"
    TEACHER_ASSIGN = "TEACHER_ASSIGN"
    THRESHOLDS_UPDATE = "THRESHOLDS_UPDATE"
    ROSTER_IMPORT = "ROSTER_IMPORT"
    PASSWORD_RESET_REQUEST = "PASSWORD_RESET_REQUEST"


class AuditLog(Base):
    """Who did what, when, from where. Partitioned by month on ``timestamp`` (see migration
    0006); no foreign keys, so entries outlive what they describe."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("ix_audit_logs_tenant_timestamp", "tenant_id", "timestamp"),
        Index("ix_audit_logs_tenant_user_timestamp", "tenant_id", "user_id", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    timestamp: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), primary_key=True, server_default=func.now()
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    action: Mapped[AuditAction] = mapped_column(Enum(AuditAction, name="audit_action"))
    resource: Mapped[str] = mapped_column(String(100))
    resource_id: Mapped[str | None] = mapped_column(String(200))
    success: Mapped[bool]
    ip_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, server_default=text("'{}'::jsonb")
    )


class TrustedDocument(Base):
    """A GraphQL document registered as allowed (``rollcall documents register``), by the
    SHA-256 of its text. Deployment-wide, not per tenant: it is the API's own allow-list."""

    __tablename__ = "trusted_documents"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    operation_names: Mapped[list[str]] = mapped_column(ARRAY(Text))
    manifest: Mapped[str] = mapped_column(String(200))
    registered_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
