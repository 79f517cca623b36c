"""The audit log: one entry per audited action, written in the action's own transaction."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.models import AuditAction, AuditLog

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


def record(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None,
    action: AuditAction,
    resource: str,
    resource_id: str | None,
    success: bool,
    origin: Origin,
    details: Mapping[str, Any],
) -> AuditLog:
    """Add the entry to ``session``: it commits, or rolls back, with the action it records."""
    entry = AuditLog(
        tenant_id=tenant_id,
        user_id=user_id,
        action=action,
        resource=resource,
        resource_id=resource_id,
        success=success,
        ip_address=origin.ip_address,
        user_agent=(origin.user_agent or "")[:USER_AGENT_LIMIT] or None,
        details=dict(details),
    )
    session.add(entry)
    return entry
