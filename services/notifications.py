"""In-app notifications and each user's notification preferences."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services import audit
from services.models import (
    AuditAction,
    Channel,
    DeliveryStatus,
    Notification,
    NotificationDelivery,
    NotificationPreferences,
    NotificationType,
    Severity,
    User,
)
from services.platform.db import SessionFactory
from services.platform.email import send_email
from services.platform.errors import Invalid, NotFound
from services.platform.keyset import KeysetPage, keyset_page

# The preference that switches each type of notification on or off.
CATEGORY = {
    NotificationType.ATTENDANCE_WARNING: "attendance_alerts",
    NotificationType.MAHROOM_ALERT: "attendance_alerts",
    NotificationType.TASDIQ_ALERT: "attendance_alerts",
    NotificationType.FILE_APPROVED: "file_updates",
    NotificationType.FILE_REJECTED: "file_updates",
    NotificationType.EXPORT_READY: "file_updates",
    NotificationType.SYSTEM_ANNOUNCEMENT: "system_announcements",
}


@dataclass(frozen=True, slots=True)
class Preferences:
    email_enabled: bool = True
    in_app_enabled: bool = True
    attendance_alerts: bool = True
    file_updates: bool = True
    system_announcements: bool = True
    updated_at: datetime | None = None

    def allows(self, kind: NotificationType) -> bool:
        """Whether the category of ``kind`` is on (channels are checked separately)."""
        return bool(getattr(self, CATEGORY[kind]))


PREFERENCE_NAMES = tuple(f.name for f in fields(Preferences) if f.name != "updated_at")


async def preferences(
    session: AsyncSession, *, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> Preferences:
    row = await session.scalar(
        select(NotificationPreferences).where(
            NotificationPreferences.tenant_id == tenant_id,
            NotificationPreferences.user_id == user_id,
        )
    )
    if row is None:
        return Preferences()
    return Preferences(
        **{name: getattr(row, name) for name in PREFERENCE_NAMES}, updated_at=row.updated_at
    )


async def update_preferences(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    changes: Mapping[str, bool],
    origin: audit.Origin | None = None,
) -> Preferences:
    """Change the named preferences, keeping the others, with a PROFILE_UPDATE audit entry in
    the same transaction (made by the user, from ``origin``, when given); VALIDATION_ERROR for
    nothing or junk."""
    if not changes:
        raise Invalid("input", "Name at least one preference to change.")
    for name, value in changes.items():
        if name not in PREFERENCE_NAMES:
            raise Invalid(f"input.{name}", f"{name} is not a notification preference.")
        if not isinstance(value, bool):
            raise Invalid(f"input.{name}", f"{name} must be true or false.")
    async with session.begin():
        statement = insert(NotificationPreferences).values(
            tenant_id=tenant_id, user_id=user_id, **changes
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["user_id"],
                set_={**changes, "updated_at": func.now()},
                where=NotificationPreferences.tenant_id == tenant_id,
            )
        )
        if origin is not None:
            audit.record(
                session,
                tenant_id=tenant_id,
                user_id=user_id,
                action=AuditAction.PROFILE_UPDATE,
                resource="notification_preferences",
                resource_id=str(user_id),
                success=True,
                origin=origin,
                details={"changes": dict(changes)},
            )
        return await preferences(session, tenant_id=tenant_id, user_id=user_id)


@dataclass(frozen=True, slots=True)
class Draft:
    """What a notification says; ``dedupe_key`` makes one logical notification happen once."""

    kind: NotificationType
    severity: Severity
    title: str
    message: str
    action_url: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None


async def notify(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    draft: Draft,
    email_available: bool,
) -> Notification | None:
    """Notify a user on the channels their preferences allow, in the caller's transaction.

    In-app delivery happens with the row; an e-mail delivery is left PENDING for the mail job
    (``services.queue.schedule_emails``). None when the category is off, no channel is on, or
    the ``dedupe_key`` was used before.
    """
    prefs = await preferences(session, tenant_id=tenant_id, user_id=user_id)
    in_app = prefs.in_app_enabled
    email = prefs.email_enabled and email_available
    if not prefs.allows(draft.kind) or not (in_app or email):
        return None
    notification = await create_notification(
        session, tenant_id=tenant_id, user_id=user_id, draft=draft, in_app=in_app
    )
    if notification is None:
        return None
    channels = [(Channel.IN_APP, DeliveryStatus.SENT)] if in_app else []
    channels += [(Channel.EMAIL, DeliveryStatus.PENDING)] if email else []
    audit.record(
        session,
        tenant_id=tenant_id,
        user_id=user_id,
        action=AuditAction.NOTIFICATION_SENT,
        resource="notification",
        resource_id=str(notification.id),
        success=True,
        origin=audit.Origin(),
        details={"type": draft.kind.value, "channels": [channel.value for channel, _ in channels]},
    )
    session.add_all(
        NotificationDelivery(
            tenant_id=tenant_id, notification_id=notification.id, channel=channel, status=status
        )
        for channel, status in channels
    )
    await session.flush()
    return notification


async def deliver_email(
    *,
    session_factory: SessionFactory,
    delivery_id: int,
    smtp_url: str,
    sender: str,
    final_try: bool,
) -> bool:
    """Send one pending e-mail delivery and record the outcome; False if it was not pending.

    A failure is recorded and raised (the job retries); on the final try the delivery is
    marked FAILED.
    """
    async with session_factory() as session:
        async with session.begin():  # not held open while talking to the mail server
            row = (
                await session.execute(
                    select(NotificationDelivery, Notification, User.email)
                    .join(Notification, Notification.id == NotificationDelivery.notification_id)
                    .join(User, User.id == Notification.user_id)
                    .where(NotificationDelivery.id == delivery_id)
                )
            ).first()
        if row is None or row[0].status is not DeliveryStatus.PENDING:
            return False
        delivery, notification, address = row
        try:
            await send_email(
                smtp_url=smtp_url,
                sender=sender,
                recipient=address,
                subject=notification.title,
                body=notification.message,
                message_id=message_id(notification.id, delivery.id, sender=sender),
            )
        except Exception as error:
            async with session.begin():
                delivery.attempts += 1
                delivery.last_error = f"{type(error).__name__}: {error}"[:2000]
                delivery.status = DeliveryStatus.FAILED if final_try else DeliveryStatus.PENDING
                delivery.updated_at = func.now()
            raise
        async with session.begin():
            delivery.attempts += 1
            delivery.status = DeliveryStatus.SENT
            delivery.last_error = None
            delivery.updated_at = func.now()
    return True


def message_id(notification_id: uuid.UUID, delivery_id: int, *, sender: str) -> str:
    """The Message-ID of one e-mail delivery, the same on every try, in the sender's domain."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "rollcall.invalid"
    return f"<{notification_id}.{delivery_id}@{domain}>"


async def create_notification(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    draft: Draft,
    in_app: bool = True,
) -> Notification | None:
    """Store a notification in the caller's transaction (listed in-app when ``in_app``).

    Returns None, writing nothing, when a notification with the same ``dedupe_key`` exists.
    """
    statement = (
        insert(Notification)
        .values(
            tenant_id=tenant_id,
            user_id=user_id,
            type=draft.kind,
            severity=draft.severity,
            title=draft.title,
            message=draft.message,
            action_url=draft.action_url,
            details=dict(draft.details),
            dedupe_key=draft.dedupe_key,
            in_app=in_app,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "dedupe_key"])
        .returning(Notification)
    )
    return await session.scalar(statement)


async def notifications_page(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    unread_only: bool,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> KeysetPage[Notification]:
    """The user's notifications, newest first, keyset-paginated on (created_at, id)."""
    scope = [
        Notification.tenant_id == tenant_id,
        Notification.user_id == user_id,
        Notification.in_app,
    ]
    if unread_only:
        scope.append(Notification.read_at.is_(None))
    order = (Notification.created_at, Notification.id)
    return await keyset_page(
        session, Notification, scope, order=order, after=after, limit=limit, newest_first=True
    )


async def mark_read(
    session: AsyncSession, *, tenant_id: uuid.UUID, user_id: uuid.UUID, notification_id: uuid.UUID
) -> Notification:
    """Mark one of the user's notifications read (idempotent); others' are NOT_FOUND."""
    async with session.begin():
        notification = await session.scalar(
            select(Notification)
            .where(
                Notification.tenant_id == tenant_id,
                Notification.user_id == user_id,
                Notification.in_app,
                Notification.id == notification_id,
            )
            .with_for_update()
        )
        if notification is None:
            raise NotFound("No such notification.")
        if notification.read_at is None:
            notification.read_at = await session.scalar(select(func.now()))
    return notification


async def mark_all_read(session: AsyncSession, *, tenant_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """Mark every unread notification of the user read; how many changed."""
    async with session.begin():
        result = await session.execute(
            update(Notification)
            .where(
                Notification.tenant_id == tenant_id,
                Notification.user_id == user_id,
                Notification.in_app,
                Notification.read_at.is_(None),
            )
            .values(read_at=func.now())
        )
    return result.rowcount or 0
