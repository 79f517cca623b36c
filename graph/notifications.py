"""Notifications and notification preferences."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graph.attributes import from_attributes
from graph.pagination import Connection
from resolvers import notifications as notification_resolvers
from resolvers.context import Info
from services import models
from services import notifications as notification_services
from services.live import NotificationEvent

NotificationType = strawberry.enum(models.NotificationType)
Severity = strawberry.enum(models.Severity)


@strawberry.type
class Notification:
    id: strawberry.ID
    type: NotificationType
    title: str
    message: str
    severity: Severity
    created_at: datetime
    read: bool
    read_at: datetime | None
    action_url: str | None

    @classmethod
    def from_model(cls, notification: models.Notification | NotificationEvent) -> Notification:
        return from_attributes(cls, notification, read=notification.read_at is not None)


@strawberry.type(description="Which channels and categories of notification you receive.")
class NotificationPreferences:
    email_enabled: bool
    in_app_enabled: bool
    attendance_alerts: bool = strawberry.field(description="Warning, MAHROOM and TASDIQ alerts.")
    file_updates: bool = strawberry.field(description="Certificate reviews and ready exports.")
    system_announcements: bool
    updated_at: datetime | None = strawberry.field(description="Null while all are defaults.")

    @classmethod
    def from_service(cls, prefs: notification_services.Preferences) -> NotificationPreferences:
        return from_attributes(cls, prefs)


@strawberry.input(description="The preferences to change; omitted ones stay as they are.")
class NotificationPreferencesInput:
    email_enabled: bool | None = strawberry.UNSET
    in_app_enabled: bool | None = strawberry.UNSET
    attendance_alerts: bool | None = strawberry.UNSET
    file_updates: bool | None = strawberry.UNSET
    system_announcements: bool | None = strawberry.UNSET

    def changes(self) -> dict[str, bool]:
        """The fields the client sent (an explicit null is passed on, and refused)."""
        return {
            name: getattr(self, name)
            for name in notification_services.PREFERENCE_NAMES
            if getattr(self, name) is not strawberry.UNSET
        }


@strawberry.type
class NotificationQuery:
    @strawberry.field(description="Your notifications, newest first.")
    async def notifications(
        self,
        info: Info,
        unread_only: bool | None = False,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[Notification]:
        page = await notification_resolvers.notifications_page(
            info, bool(unread_only), first, after
        )
        return Connection.from_page(page, Notification.from_model)

    @strawberry.field(description="Your notification preferences.")
    async def notification_preferences(self, info: Info) -> NotificationPreferences:
        return NotificationPreferences.from_service(await notification_resolvers.preferences(info))


@strawberry.type
class NotificationMutation:
    @strawberry.mutation(description="Change some of your notification preferences.")
    async def update_notification_preferences(
        self, info: Info, input: NotificationPreferencesInput
    ) -> NotificationPreferences:
        prefs = await notification_resolvers.update_preferences(info, input.changes())
        return NotificationPreferences.from_service(prefs)

    @strawberry.mutation(description="Mark one of your notifications read.")
    async def mark_notification_read(self, info: Info, id: strawberry.ID) -> Notification:
        return Notification.from_model(await notification_resolvers.mark_read(info, id))

    @strawberry.mutation(description="Mark all your notifications read; how many changed.")
    async def mark_all_notifications_read(self, info: Info) -> int:
        return await notification_resolvers.mark_all_read(info)
