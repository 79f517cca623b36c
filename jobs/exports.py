"""Building requested exports, marking them FAILED when every try failed, and expiring old
ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services import exports
from services.platform.settings import Settings

EXPORT_TIMEOUT_SECONDS = 900


async def build_export(
    ctx: dict[str, Any], tenant_id: str, export_id: str, deferrals: int = 0
) -> str | None:
    """Build one export; the status it ends in. Retried (then dead-lettered and FAILED) while
    the database or the object store fails. While the worker is short of CPU or memory the
    build queues itself again for later (``DEFERRED``), at most ``MAX_DEFERRALS`` times."""
    settings: Settings = ctx["settings"]
    if exports.should_defer(deferrals, constrained=ctx["resources"].constrained):
        await exports.defer_build(
            session_factory=ctx["session_factory"],
            queue=ctx["redis"],
            tenant_id=uuid.UUID(tenant_id),
            export_id=uuid.UUID(export_id),
            deferrals=deferrals + 1,
        )
        return "DEFERRED"
    status = await exports.build_export(
        session_factory=ctx["session_factory"],
        store=ctx["store"],
        links=ctx["links"],
        redis=ctx["cache"].redis,
        queue=ctx["redis"],
        tenant_id=uuid.UUID(tenant_id),
        export_id=uuid.UUID(export_id),
        public_url=settings.public_url,
        email_available=settings.smtp_url is not None,
    )
    return None if status is None else status.value


async def export_failed(
    ctx: dict[str, Any], error: BaseException, tenant_id: str, export_id: str, deferrals: int = 0
) -> None:
    """The last try of ``build_export`` failed: the export says so instead of staying RUNNING."""
    await exports.mark_failed(
        session_factory=ctx["session_factory"],
        store=ctx["store"],
        tenant_id=uuid.UUID(tenant_id),
        export_id=uuid.UUID(export_id),
        error=error,
    )


async def expire_old_exports(ctx: dict[str, Any]) -> int:
    """Delete the files of exports older than the retention time; how many."""
    settings: Settings = ctx["settings"]
    return await exports.expire_exports(
        session_factory=ctx["session_factory"],
        store=ctx["store"],
        older_than=datetime.now(UTC) - timedelta(days=settings.export_retention_days),
    )
