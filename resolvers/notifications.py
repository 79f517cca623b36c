"""The viewer's notifications and preferences."""

from __future__ import annotations

from collections.abc import Mapping

from resolvers.context import Info, parse_id
from resolvers.pagination import (
    Page,
    decode_time_cursor,
    encode_time_cursor,
    page_size,
    relay_page,
)
from services import notifications
from services.models import Notification

NOTIFICATION_CURSOR = "notification"


async def notifications_page(
    info: Info, unread_only: bool, first: int | None, after: str | None
) -> Page[Notification]:
    context = info.context
    viewer = context.viewer
    size = page_size(first, 20)
    position = decode_time_cursor(after, NOTIFICATION_CURSOR)
    page = await context.session_factory.reading(
        lambda session: notifications.notifications_page(
            session,
            tenant_id=viewer.tenant_id,
            user_id=viewer.user_id,
            unread_only=unread_only,
            after=position,
            limit=size,
        )
    )
    return relay_page(
        page, lambda n: encode_time_cursor(NOTIFICATION_CURSOR, n.created_at, n.id), position
    )


async def preferences(info: Info) -> notifications.Preferences:
    context = info.context
    viewer = context.viewer
    return await context.session_factory.reading(
        lambda session: notifications.preferences(
            session, tenant_id=viewer.tenant_id, user_id=viewer.user_id
        )
    )


async def update_preferences(info: Info, changes: Mapping[str, bool]) -> notifications.Preferences:
    context = info.context
    viewer = context.viewer
    async with context.session_factory() as session:
        return await notifications.update_preferences(
            session,
            tenant_id=viewer.tenant_id,
            user_id=viewer.user_id,
            changes=changes,
            origin=context.origin,
        )


async def mark_read(info: Info, notification_id: str) -> Notification:
    context = info.context
    viewer = context.viewer
    key = parse_id(notification_id, "id")
    # Idempotent: marking read again changes nothing, so it is retried like a read.
    return await context.session_factory.retrying(
        lambda session: notifications.mark_read(
            session, tenant_id=viewer.tenant_id, user_id=viewer.user_id, notification_id=key
        )
    )


async def mark_all_read(info: Info) -> int:
    context = info.context
    viewer = context.viewer
    async with context.session_factory() as session:
        return await notifications.mark_all_read(
            session, tenant_id=viewer.tenant_id, user_id=viewer.user_id
        )
