"""Moving jobs that were kept in PostgreSQL while Redis was down into their queues."""

from __future__ import annotations

from typing import Any

from services.queue import drain_outbox as drain


async def drain_outbox(ctx: dict[str, Any]) -> int:
    """Every minute and at start-up: how many jobs were moved."""
    return await drain(redis=ctx["redis"], session_factory=ctx["session_factory"])
