"""Logging in and changing passwords, with their limits and their audit trail.

Failures are limited per (account, IP address) (``login``, the design's 5 per 15 min), per IP
address (``login_ip``, looser: a whole school may sit behind one address) and per account from
every address (``login_account``, slower). Over one, even the right password is refused until
the window has room, but the account's own limit holds only at an address that has failed for
the account: guesses from elsewhere, however many, never stop its owner signing in from an
address of theirs, and each guessing address still gets but a few tries. Every attempt is
audited (a refusal as RATE_LIMIT_EXCEEDED):
LOGIN_SUCCESS, or LOGIN_FAILURE with its reason, IP address and user agent. A password change
proves the current password; wrong ones are limited like failed logins (``login``'s 5 per
15 min), in a window of the account's own, apart from its logins' ones: a stolen token
must not become a way to guess it. It is audited PASSWORD_CHANGE, succeeded or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import datetime

from arq.connections import ArqRedis
from sqlalchemy import select, update

from services import audit
from services.auth import (
    LoginFailed,
    LoginResult,
    Viewer,
    check_credentials_shape,
    hash_password,
    login,
    needs_rehash,
    verify_password,
)
from services.credentials import user_tag
from services.models import AuditAction, Tenant, User
from services.platform.cache import Cache
from services.platform.db import SessionFactory
from services.platform.errors import Invalid, NotFound
from services.platform.telemetry import LOGIN_FAILURES
from services.queue import invalidate_or_schedule
from services.rate_limits import RateLimited, RateLimiter, record_refusal

PAIR_LIMIT = "login"
IP_LIMIT = "login_ip"
ACCOUNT_LIMIT = "login_account"
RESOURCE = "session"
PASSWORD_LENGTH = (12, 128)


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
    check_credentials_shape(tenant_slug, email, password)
    account = (tenant_slug.strip().lower(), email.strip().lower())
    address = origin.ip_address or "unknown"
    pair = (*account, address)
    try:
        standing = await limiter.check(PAIR_LIMIT, *pair)
        await limiter.check(IP_LIMIT, address)
        if standing is not None and standing.remaining < standing.limit:  # failed here before
            await limiter.check(ACCOUNT_LIMIT, *account)
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
        LOGIN_FAILURES.labels(failed.reason).inc()
        for name, identity in (
            (PAIR_LIMIT, pair),
            (IP_LIMIT, (address,)),
            (ACCOUNT_LIMIT, account),
        ):
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
    if needs_rehash(result.user.password_hash):
        await _rehash(session_factory, user=result.user, password=password)
    return result


async def _rehash(session_factory: SessionFactory, *, user: User, password: str) -> None:
    """Store the proven password's hash with today's settings, unless it changed meanwhile."""
    new_hash = await asyncio.to_thread(hash_password, password)
    async with session_factory() as session, session.begin():
        await session.execute(
            update(User)
            .where(User.id == user.id, User.password_hash == user.password_hash)
            .values(password_hash=new_hash)
        )


def check_new_password(current: str, new: str) -> None:
    """VALIDATION_ERROR on ``newPassword`` unless it is a usable new password."""
    low, high = PASSWORD_LENGTH
    if not low <= len(new) <= high:
        raise Invalid("newPassword", f"The new password must be {low} to {high} characters long.")
    if not new.strip():
        raise Invalid("newPassword", "The new password must not be blank.")
    if new == current:
        raise Invalid("newPassword", "The new password must differ from the current one.")


async def change_password(
    *,
    session_factory: SessionFactory,
    limiter: RateLimiter,
    viewer: Viewer,
    current_password: str,
    new_password: str,
    origin: audit.Origin,
    cache: Cache,
    queue: ArqRedis,
    clock: Callable[[], datetime],
) -> None:
    """Replace the viewer's password once the current one is proven; the new hash and its
    PASSWORD_CHANGE entry commit together. A wrong current password is VALIDATION_ERROR on
    ``currentPassword``, audited and counted in the account's own window of the login limit.

    Every token issued before the change is refused from then on, the caller's own included.
    The change's time is read as the new hash is written, so a login with the old password
    while this runs does not outlive it. The account's cached credentials are invalidated
    before this returns (or, with Redis down, before any process trusts its cache again)."""
    check_new_password(current_password, new_password)
    account = ("user", str(viewer.user_id))
    try:
        await limiter.check(PAIR_LIMIT, *account)
    except RateLimited as refused:
        await record_refusal(
            session_factory,
            tenant_id=viewer.tenant_id,
            user_id=viewer.user_id,
            refused=refused,
            origin=origin,
            subject="changePassword",
        )
        raise
    async with session_factory() as session:
        async with session.begin():
            user = await session.scalar(
                select(User).where(
                    User.tenant_id == viewer.tenant_id, User.id == viewer.user_id, User.active
                )
            )
        if user is None:
            raise NotFound("The account no longer exists.")
        # Off the event loop: a hash is tens of milliseconds of CPU.
        if not await asyncio.to_thread(verify_password, user.password_hash, current_password):
            with contextlib.suppress(RateLimited):
                await limiter.hit(PAIR_LIMIT, *account)
            await audit.record_alone(
                session_factory,
                tenant_id=viewer.tenant_id,
                user_id=viewer.user_id,
                action=AuditAction.PASSWORD_CHANGE,
                resource="user",
                resource_id=str(viewer.user_id),
                success=False,
                origin=origin,
                details={"reason": "wrong_current_password"},
            )
            raise Invalid("currentPassword", "The current password is wrong.")
        new_hash = await asyncio.to_thread(hash_password, new_password)
        async with session.begin():
            user.password_hash = new_hash
            user.credentials_changed_at = clock()
            audit.record(
                session,
                tenant_id=viewer.tenant_id,
                user_id=viewer.user_id,
                action=AuditAction.PASSWORD_CHANGE,
                resource="user",
                resource_id=str(viewer.user_id),
                success=True,
                origin=origin,
                details={},
            )
        await invalidate_or_schedule(
            cache, queue, session, tenant_id=viewer.tenant_id, tags=[user_tag(viewer.user_id)]
        )


async def _tenant_id(session_factory: SessionFactory, slug: str) -> uuid.UUID | None:
    async with session_factory() as session:
        return await session.scalar(select(Tenant.id).where(Tenant.slug == slug))
