"""The audit log, for admins."""

from __future__ import annotations

from datetime import datetime

from resolvers.context import Info, parse_id
from resolvers.pagination import Page, decode_cursor, encode_cursor, page_size, relay_page
from services import audit
from services.models import AuditAction, AuditLog
from services.platform.errors import Invalid

AUDIT_CURSOR = "audit"


async def audit_page(
    info: Info,
    *,
    user_id: str | None,
    action: AuditAction | None,
    since: datetime | None,
    until: datetime | None,
    success: bool | None,
    first: int | None,
    after: str | None,
) -> Page[AuditLog]:
    context = info.context
    context.access.ensure_admin("read the audit log")
    size = page_size(first, 50)
    position = _position(after)
    where = audit.AuditFilter(
        user_id=parse_id(user_id, "filter.userId") if user_id is not None else None,
        action=action,
        since=since,
        until=until,
        success=success,
    )
    page = await context.session_factory.reading(
        lambda session: audit.audit_page(
            session,
            tenant_id=context.viewer.tenant_id,
            where=where,
            after=position,
            limit=size,
        )
    )
    return relay_page(page, _cursor, position)


def _cursor(entry: AuditLog) -> str:
    """Entries are keyed by (timestamp, id), the id being a number rather than a UUID."""
    return encode_cursor(AUDIT_CURSOR, f"{entry.timestamp.isoformat()}|{entry.id}", entry.tenant_id)


def _position(after: str | None) -> tuple[datetime, int] | None:
    keyset = decode_cursor(after, AUDIT_CURSOR, str)
    if keyset is None:
        return None
    at, _, number = keyset[0].partition("|")
    try:
        return datetime.fromisoformat(at), int(number)
    except ValueError as error:
        raise Invalid("after", "after is not a cursor from this connection.") from error
