"""The audit log (admins only)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from graph.attributes import from_attributes
from graph.pagination import Connection
from resolvers import audit as audit_resolvers
from resolvers.context import Info
from services import models

AuditAction = strawberry.enum(models.AuditAction)


@strawberry.type(description="One audited action.")
class AuditLog:
    id: strawberry.ID
    user_id: strawberry.ID | None
    action: AuditAction
    resource: str
    resource_id: str | None
    success: bool
    ip_address: str | None
    user_agent: str | None
    timestamp: datetime
    metadata: JSON

    @classmethod
    def from_model(cls, entry: models.AuditLog) -> AuditLog:
        return from_attributes(
            cls,
            entry,
            ip_address=None if entry.ip_address is None else str(entry.ip_address),
            metadata=entry.details,
        )


@strawberry.input(description="Entries matching every field given.")
class AuditLogFilter:
    user_id: strawberry.ID | None = None
    action: AuditAction | None = None
    from_: datetime | None = strawberry.field(default=None, name="from")
    to: datetime | None = None
    success: bool | None = None


@strawberry.type
class AuditQuery:
    @strawberry.field(description="The school's audit log, newest first (admins only).")
    async def audit_logs(
        self,
        info: Info,
        filter: AuditLogFilter | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[AuditLog]:
        where = filter or AuditLogFilter()
        page = await audit_resolvers.audit_page(
            info,
            user_id=where.user_id,
            action=where.action,
            since=where.from_,
            until=where.to,
            success=where.success,
            first=first,
            after=after,
        )
        return Connection.from_page(page, AuditLog.from_model)
