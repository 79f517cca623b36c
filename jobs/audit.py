"""Audit log upkeep: monthly partitions made ahead, and old months archived to the store."""

from __future__ import annotations

import logging
from typing import Any

from services.audit_maintenance import archive_audit_logs as archive
from services.audit_maintenance import ensure_partitions
from services.platform.settings import Settings

logger = logging.getLogger(__name__)


async def ensure_audit_partitions(ctx: dict[str, Any]) -> list[str]:
    """Make the audit log's missing partitions, this month's and the next ones'; their names."""
    created = await ensure_partitions(session_factory=ctx["session_factory"])
    for partition in created:
        logger.info(
            "audit log: made %s (%s rows moved from the default partition)",
            partition.name,
            partition.moved_rows,
        )
    return [partition.name for partition in created]


async def archive_audit_logs(ctx: dict[str, Any]) -> dict[str, Any]:
    """Archive the audit log's months past retention when it is over its size; a summary."""
    settings: Settings = ctx["settings"]
    report = await archive(
        session_factory=ctx["session_factory"],
        store=ctx["store"],
        min_rows=settings.audit_archive_min_rows,
        retention_days=settings.audit_retention_days,
    )
    summary = {
        "archived": [done.key for done in report.archived],
        "rows": report.rows,
        "bytes": report.bytes,
        "skipped": report.skipped,
    }
    logger.info("audit log archival: %s", summary)
    return summary
