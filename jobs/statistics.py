"""Keeping the class statistics and rankings snapshots fresh."""

from __future__ import annotations

from typing import Any

from services.statistics_refresh import refresh_statistics as refresh


async def refresh_statistics(ctx: dict[str, Any]) -> None:
    """Refresh both statistics views (debounced after marks, and every 10 minutes by cron),
    then renew the cached class aggregates of tenants whose marks were pending."""
    await refresh(session_factory=ctx["session_factory"], cache=ctx["cache"])
