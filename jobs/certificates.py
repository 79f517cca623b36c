"""Scanning uploaded certificates, and sweeping objects a crash left without a row."""

from __future__ import annotations

import uuid
from typing import Any

from services.certificates import scan_certificate as scan
from services.certificates import sweep_orphans
from services.platform.settings import Settings


async def scan_certificate(ctx: dict[str, Any], tenant_id: str, certificate_id: str) -> str | None:
    """Scan one certificate; the status it ends in. Retried (then dead-lettered) while the
    scanner or the object store fails."""
    settings: Settings = ctx["settings"]
    status = await scan(
        session_factory=ctx["session_factory"],
        store=ctx["store"],
        scanner=ctx["scanner"],
        redis=ctx["cache"].redis,
        queue=ctx["redis"],
        tenant_id=uuid.UUID(tenant_id),
        certificate_id=uuid.UUID(certificate_id),
        email_available=settings.smtp_url is not None,
    )
    return None if status is None else status.value


async def sweep_orphan_objects(ctx: dict[str, Any]) -> int:
    """Delete stored certificate objects no row names; how many."""
    return len(await sweep_orphans(session_factory=ctx["session_factory"], store=ctx["store"]))
