"""Logging in, with its limits and its audit trail.

Failures are limited per (tenant, email) (``login``, the design's 5 per 15 min) and per IP
address (``login_ip``, looser: a whole school may sit behind one address). Over either, even
the right password is refused until the window has room. Every attempt is audited:
LOGIN_SUCCESS, or LOGIN_FAILURE with its reason, IP address and user agent.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime

from sqlalchemy import select

from services import audit
from services.auth import LoginFailed, LoginResult, login
from services.db import SessionFactory
from services.models import AuditAction, Tenant
from services.rate_limits import RateLimited, RateLimiter, record_refusal

EMAIL_LIMIT = "login"
IP_LIMIT = "login_ip"
RESOURCE = "session"


async def log_in(
    *,
    session_factory: SessionFactory,
    limiter: RateLimiter,
    tenant_slug: str,
    email: str,
    password: str,
    origin: audit.Origin,
    secret: str,
    ttl_seconds: int,
    now: datetime,
) -> LoginResult:
    account = (tenant_slug.strip().lower(), email.strip().lower())
    address = origin.ip_address or "unknown"
    try:
        await limiter.check(EMAIL_LIMIT, *account)
        await limiter.check(IP_LIMIT, address)
    except RateLimited as refused:
        tenant_id = await _tenant_id(session_factory, account[0])
        if tenant_id is not None:
            await record_refusal(
                session_factory,
                tenant_id=tenant_id,
                user_id=None,
                refused=refused,
                origin=origin,
                subject=account[1],
            )
        raise
    try:
        async with session_factory() as session:
            result = await login(
                session=session,
                tenant_slug=tenant_slug,
                email=email,
                password=password,
                secret=secret,
                ttl_seconds=ttl_seconds,
                now=now,
            )
    except LoginFailed as failed:
        for name, identity in ((EMAIL_LIMIT, account), (IP_LIMIT, (address,))):
            # Over the limit with this failure: the next attempt is the one refused.
            with contextlib.suppress(RateLimited):
                await limiter.hit(name, *identity)
        if failed.tenant_id is not None:
            await audit.record_alone(
                session_factory,
                tenant_id=failed.tenant_id,
                user_id=failed.user_id,
                action=AuditAction.LOGIN_FAILURE,
                resource=RESOURCE,
                resource_id=None,
                success=False,
                origin=origin,
                details={"email": account[1], "reason": failed.reason},
            )
        raise
    await audit.record_alone(
        session_factory,
        tenant_id=result.tenant.id,
        user_id=result.user.id,
        action=AuditAction.LOGIN_SUCCESS,
        resource=RESOURCE,
        resource_id=None,
        success=True,
        origin=origin,
        details={"email": account[1]},
    )
    return result


async def _tenant_id(session_factory: SessionFactory, slug: str) -> uuid.UUID | None:
    async with session_factory() as session:
        return await session.scalar(select(Tenant.id).where(Tenant.slug == slug))
