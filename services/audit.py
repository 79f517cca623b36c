"""The audit log: one entry per audited action, written in the action's own transaction."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy.ext.asyncio import AsyncSession

from services.models import AuditAction, AuditLog
from services.platform.db import SessionFactory
from services.platform.errors import Invalid
from services.platform.keyset import KeysetPage, keyset_page

USER_AGENT_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from, as the audit log records it."""

    ip_address: str | None = None
    user_agent: str | None = None

    @classmethod
    def of(cls, host: str | None, user_agent: str | None) -> Origin:
        """Keeps ``host`` only when it is an IP address (a unix socket or test client's isn't)."""
        try:
            address = str(ipaddress.ip_address(host or ""))
        except ValueError:
            address = None
        return cls(ip_address=address, user_agent=user_agent)


class Entry(TypedDict):
    """What an audited action says of itself."""

    tenant_id: uuid.UUID
    user_id: uuid.UUID | None
    action: AuditAction
    resource: str
    resource_id: str | None
    success: bool
    origin: Origin
    details: Mapping[str, Any]


def record(session: AsyncSession, **entry: Unpack[Entry]) -> AuditLog:
    """Add the entry to ``session``: it commits, or rolls back, with the action it records."""
    origin, details = entry.pop("origin"), entry.pop("details")
    row = AuditLog(
        **entry,
        ip_address=origin.ip_address,
        user_agent=(origin.user_agent or "")[:USER_AGENT_LIMIT] or None,
        details=dict(details),
    )
    session.add(row)
    return row


async def record_alone(session_factory: SessionFactory, **entry: Unpack[Entry]) -> None:
    """An entry in a transaction of its own, for actions that write nothing else (a login,
    a refusal)."""
    async with session_factory() as session, session.begin():
        record(session, **entry)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    user_id: uuid.UUID | None = None
    action: AuditAction | None = None
    since: datetime | None = None
    until: datetime | None = None
    success: bool | None = None


async def audit_page(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    where: AuditFilter,
    after: tuple[datetime, int] | None,
    limit: int,
) -> KeysetPage[AuditLog]:
    """The tenant's entries matching ``where``, newest first, keyset-paginated on
    (timestamp, id); a date range reads only the partitions it spans."""
    if where.since is not None and where.until is not None and where.since > where.until:
        raise Invalid("filter.to", "to must not be before from.")
    scope = [AuditLog.tenant_id == tenant_id]
    if where.user_id is not None:
        scope.append(AuditLog.user_id == where.user_id)
    if where.action is not None:
        scope.append(AuditLog.action == where.action)
    if where.since is not None:
        scope.append(AuditLog.timestamp >= where.since)
    if where.until is not None:
        scope.append(AuditLog.timestamp <= where.until)
    if where.success is not None:
        scope.append(AuditLog.success.is_(where.success))
    order = (AuditLog.timestamp, AuditLog.id)
    return await keyset_page(
        session, AuditLog, scope, order=order, after=after, limit=limit, newest_first=True
    )
