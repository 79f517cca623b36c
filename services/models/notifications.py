"""Notifications, each user's preferences, and their deliveries by channel."""

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
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base, owner_fk, tenant_fk, uuid_pk


class NotificationType(StrEnum):
    ATTENDANCE_WARNING = "ATTENDANCE_WARNING"
    MAHROOM_ALERT = "MAHROOM_ALERT"
    TASDIQ_ALERT = "TASDIQ_ALERT"
    FILE_APPROVED = "FILE_APPROVED"
    FILE_REJECTED = "FILE_REJECTED"
    EXPORT_READY = "EXPORT_READY"
    SYSTEM_ANNOUNCEMENT = "SYSTEM_ANNOUNCEMENT"


class Severity(StrEnum):
    INFO = "INFO"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    ERROR = "ERROR"


class Notification(Base):
    """A message to one user; ``dedupe_key`` makes a logical notification happen once."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_recipient_created", "tenant_id", "user_id", "created_at", "id"),
        Index(
            "ix_notifications_recipient_unread",
            "tenant_id",
            "user_id",
            postgresql_where=text("read_at IS NULL"),
        ),
        UniqueConstraint("tenant_id", "dedupe_key", name="uq_notifications_dedupe_key"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    user_id: Mapped[uuid.UUID] = owner_fk("users.id")
    type: Mapped[NotificationType] = mapped_column(Enum(NotificationType, name="notification_type"))
    severity: Mapped[Severity] = mapped_column(Enum(Severity, name="notification_severity"))
    title: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    action_url: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    in_app: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NotificationPreferences(Base):
    """Channels and categories a user receives; no row means every default (all on)."""

    __tablename__ = "notification_preferences"

    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    user_id: Mapped[uuid.UUID] = owner_fk("users.id", primary_key=True)
    email_enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    in_app_enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    attendance_alerts: Mapped[bool] = mapped_column(server_default=text("true"))
    file_updates: Mapped[bool] = mapped_column(server_default=text("true"))
    system_announcements: Mapped[bool] = mapped_column(server_default=text("true"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Channel(StrEnum):
    IN_APP = "IN_APP"
    EMAIL = "EMAIL"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


class NotificationDelivery(Base):
    """How one notification reached (or failed to reach) its recipient on one channel."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel", name="uq_notification_deliveries_channel"),
        Index("ix_notification_deliveries_status", "tenant_id", "status"),
        # The sweep of e-mails whose job was lost: few rows, across tenants.
        Index(
            "ix_notification_deliveries_pending_email",
            "updated_at",
            postgresql_where=text("status = 'PENDING' AND channel = 'EMAIL'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    notification_id: Mapped[uuid.UUID] = owner_fk("notifications.id")
    channel: Mapped[Channel] = mapped_column(Enum(Channel, name="delivery_channel"))
    status: Mapped[DeliveryStatus] = mapped_column(Enum(DeliveryStatus, name="delivery_status"))
    attempts: Mapped[int] = mapped_column(server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
