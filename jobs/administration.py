"""Importing rosters and sending password-reset mails."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from services import password_resets, roster_imports
from services.administration import Followers
from services.audit import Origin
from services.platform.email import send_email
from services.platform.settings import Settings

logger = logging.getLogger(__name__)


async def import_roster(ctx: dict[str, Any], tenant_id: str, import_id: str) -> str | None:
    """Apply one roster import to its end; the status it ended in."""
    settings: Settings = ctx["settings"]
    status = await roster_imports.run_import(
        session_factory=ctx["session_factory"],
        tenant_id=uuid.UUID(tenant_id),
        import_id=uuid.UUID(import_id),
        followers=Followers(
            cache=ctx["cache"],
            queue=ctx["redis"],
            refresh_delay_seconds=settings.statistics_refresh_delay_seconds,
            now=time.time(),
        ),
    )
    return None if status is None else status.value


async def import_failed(
    ctx: dict[str, Any], error: BaseException, tenant_id: str, import_id: str
) -> None:
    """The last try of ``import_roster`` failed: the import says so instead of staying RUNNING."""
    await roster_imports.mark_failed(
        session_factory=ctx["session_factory"],
        tenant_id=uuid.UUID(tenant_id),
        import_id=uuid.UUID(import_id),
        error=type(error).__name__,
    )


async def send_password_reset(
    ctx: dict[str, Any],
    tenant_slug: str,
    email: str,
    request_id: str,
    ip_address: str | None,
    user_agent: str | None,
    request_url: str | None,
) -> bool:
    """Mail a reset link to the account, if it exists; whether a link was issued. The link's
    host is ROLLCALL_PUBLIC_URL; the request's own address only in development, as a client
    picks its Host header (a forged one must never reach a reset mail)."""
    settings: Settings = ctx["settings"]
    issued = await password_resets.issue_reset(
        session_factory=ctx["session_factory"],
        tenant_slug=tenant_slug,
        email=email,
        request_id=uuid.UUID(request_id),
        origin=Origin(ip_address=ip_address, user_agent=user_agent),
        now=datetime.now(UTC),
    )
    if issued is None:
        return False
    base_url = settings.public_url or (None if settings.production else request_url)
    if base_url is None:
        logger.error("no reset link sent to %s: set ROLLCALL_PUBLIC_URL", issued.recipient)
        return False
    link = password_resets.reset_link(base_url, issued.token)
    if not settings.production:
        logger.info("password reset link for %s: %s", issued.recipient, link)
    if settings.smtp_url is not None:
        await send_email(
            smtp_url=settings.smtp_url,
            sender=settings.email_from,
            recipient=issued.recipient,
            subject="Set your Rollcall password",
            body=(
                "Someone (we hope you) asked to set the password of your Rollcall account.\n\n"
                f"Open this link within the hour to choose it:\n{link}\n\n"
                "The link works once. If you did not ask, ignore this mail: your password "
                "stays as it is.\n"
            ),
            message_id=f"<password-reset-{request_id}@rollcall>",
        )
    return True
