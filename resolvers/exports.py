"""Exports: requesting one (checked, then counted against the rate limit), following them."""

from __future__ import annotations

from urllib.parse import urljoin

from resolvers.context import Info, parse_id
from resolvers.pagination import (
    Page,
    decode_time_cursor,
    encode_time_cursor,
    page_size,
    relay_page,
)
from services import exports
from services.models import Export

EXPORT_CURSOR = "export"
EXPORT_LIMIT = "export"


async def request(info: Info, request: exports.ExportRequest) -> Export:
    context = info.context
    # A request that could never run is refused before it uses up the viewer's quota.
    exports.validate_request(request, access=context.access)
    await context.limit(EXPORT_LIMIT)
    return await exports.request_export(
        session_factory=context.session_factory,
        queue=context.redis,
        access=context.access,
        request=request,
        origin=context.origin,
        constrained=context.resources.constrained,
    )


async def exports_page(info: Info, first: int | None, after: str | None) -> Page[Export]:
    context = info.context
    size = page_size(first, 20)
    position = decode_time_cursor(after, EXPORT_CURSOR)
    page = await context.session_factory.reading(
        lambda session: exports.exports_page(
            session, access=context.access, after=position, limit=size
        )
    )
    return relay_page(
        page, lambda e: encode_time_cursor(EXPORT_CURSOR, e.created_at, e.id), position
    )


async def own_export(info: Info, export_id: str) -> Export | None:
    context = info.context
    key = parse_id(export_id, "id")
    return await context.session_factory.reading(
        lambda session: exports.own_export(session, access=context.access, export_id=key)
    )


def download_url(info: Info, export: Export) -> str | None:
    """An absolute link: this API serves every download, under its public URL."""
    context = info.context
    link = exports.download_url(context.links, export, viewer_id=context.viewer.user_id)
    return None if link is None else urljoin(context.public_url, link)
