"""Invalidations that could not reach Redis when their write committed."""

from __future__ import annotations

import uuid
from typing import Any

from services.cached_reads import invalidate_marks


async def invalidate_cache(ctx: dict[str, Any], tenant_id: str, tags: list[str]) -> None:
    """Renew the tags' versions; fails (and is retried) while Redis is still unavailable."""
    await invalidate_marks(ctx["cache"], tenant_id=uuid.UUID(tenant_id), tags=tags)
