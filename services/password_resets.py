"""Setting a password by a link sent by email: how accounts created by an admin or a roster
import get their first password, and how anyone who forgot theirs gets a new one.

The request only counts against its rate limits and queues a job, so it answers the same, in
the same time, whether or not the account exists. The job looks the account up, keeps the
SHA-256 of a fresh random token (the token itself exists only in the email and, in
development, the log) and sends the link. A token works once, for an hour, and only the newest
of an account's tokens works. Setting the password spends it, revokes the others and every
session (tokens issued before it are refused, ``services.credentials``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from arq.connections import ArqRedis
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from services import audit
from services.auth import hash_password
from services.credentials import user_tag
from services.logins import check_new_password
from services.models import AuditAction, PasswordReset, Tenant, User
from services.platform.cache import Cache
from services.platform.db import SessionFactory
from services.platform.errors import Invalid
from services.queue import SEND_PASSWORD_RESET, Queue, enqueue, invalidate_or_schedule
from services.rate_limits import RateLimiter

RESET_TTL = timedelta(hours=1)
REQUEST_LIMIT = "password_reset"
IP_LIMIT = "password_reset_ip"
RESOURCE = "user"
TOKEN_BYTES = 32
logger = logging.getLogger(__name__)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).hexdigest()


def reset_link(base_url: str, token: str) -> str:
    """The page's reset form; the token rides in the fragment, which browsers never send to
    a server (nor in a Referer)."""
    return f"{base_url.rstrip('/')}/#reset={token}"


async def request_reset(
    *,
    session_factory: SessionFactory,
    limiter: RateLimiter,
    queue: ArqRedis,
    tenant_slug: str,
    email: str,
    origin: audit.Origin,
    base_url: str | None,
) -> None:
    """Queue the reset mail of this account, if there is one; RATE_LIMIT_EXCEEDED past the
    account's or the address's limit (whether or not the account exists)."""
    slug, address = tenant_slug.strip().lower(), email.strip().lower()
    if not slug:
        raise Invalid("tenant", "The tenant is required.")
    if not address:
        raise Invalid("email", "The email is required.")
    await limiter.hit(REQUEST_LIMIT, slug, address)
    await limiter.hit(IP_LIMIT, origin.ip_address or "unknown")
    request_id = uuid.uuid4()
    async with session_factory() as session:
        await enqueue(
            queue,
            session,
            SEND_PASSWORD_RESET,
            slug,
            address,
            str(request_id),
            origin.ip_address,
            origin.user_agent,
            base_url,
            queue=Queue.URGENT,
            job_id=f"{SEND_PASSWORD_RESET}:{request_id}",
        )


@dataclass(frozen=True, slots=True)
class IssuedReset:
    recipient: str
    token: str


async def issue_reset(
    *,
    session_factory: SessionFactory,
    tenant_slug: str,
    email: str,
    request_id: uuid.UUID,
    origin: audit.Origin,
    now: datetime,
) -> IssuedReset | None:
    """A new token for the account (the older ones revoked), or None when the tenant has no
    active account by that email. Audited either way when the tenant exists. Run again for
    the same request (a retried job), the request's token is replaced: only the mail last sent
    works."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    async with session_factory() as session, session.begin():
        row = (
            await session.execute(
                select(User, Tenant.id)
                .join(Tenant, Tenant.id == User.tenant_id)
                .where(Tenant.slug == tenant_slug, User.email == email, User.active)
            )
        ).first()
        if row is None:
            tenant_id = await session.scalar(select(Tenant.id).where(Tenant.slug == tenant_slug))
            if tenant_id is not None:
                audit.record(
                    session,
                    tenant_id=tenant_id,
                    user_id=None,
                    action=AuditAction.PASSWORD_RESET_REQUEST,
                    resource=RESOURCE,
                    resource_id=None,
                    success=False,
                    origin=origin,
                    details={"email": email, "reason": "unknown_or_inactive_user"},
                )
            return None
        user, tenant_id = row
        await session.execute(
            update(PasswordReset)
            .where(
                PasswordReset.tenant_id == tenant_id,
                PasswordReset.user_id == user.id,
                PasswordReset.id != request_id,
                PasswordReset.used_at.is_(None),
            )
            .values(used_at=now)
        )
        statement = insert(PasswordReset).values(
            id=request_id,
            tenant_id=tenant_id,
            user_id=user.id,
            token_hash=token_hash(token),
            created_at=now,
            expires_at=now + RESET_TTL,
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["id"],
                set_={
                    "token_hash": statement.excluded.token_hash,
                    "expires_at": statement.excluded.expires_at,
                },
                where=PasswordReset.used_at.is_(None),
            )
        )
        audit.record(
            session,
            tenant_id=tenant_id,
            user_id=user.id,
            action=AuditAction.PASSWORD_RESET_REQUEST,
            resource=RESOURCE,
            resource_id=str(user.id),
            success=True,
            origin=origin,
            details={"email": email},
        )
    return IssuedReset(recipient=user.email, token=token)


async def reset_password(
    *,
    session_factory: SessionFactory,
    limiter: RateLimiter,
    token: str,
    new_password: str,
    origin: audit.Origin,
    cache: Cache,
    queue: ArqRedis,
    clock: Callable[[], datetime],
) -> None:
    """Set the password of the token's account. VALIDATION_ERROR on ``token`` when it is
    unknown, spent, revoked or expired (counted against the address's limit), on
    ``newPassword`` when the password is unusable."""
    check_new_password("", new_password)
    address = origin.ip_address or "unknown"
    await limiter.check(IP_LIMIT, address)
    # Off the event loop, and before any row is locked: a hash is tens of milliseconds of CPU.
    new_hash = await asyncio.to_thread(hash_password, new_password)
    async with session_factory() as session:
        async with session.begin():
            now = clock()
            # Locked: two uses of one token at once cannot both pass the check.
            row = (
                await session.execute(
                    select(PasswordReset, User)
                    .join(User, User.id == PasswordReset.user_id)
                    .where(PasswordReset.token_hash == token_hash(token))
                    .with_for_update(of=PasswordReset)
                )
            ).first()
            usable = (
                row is not None
                and row[0].used_at is None
                and row[0].expires_at > now
                and row[1].active
            )
            if row is not None:
                reset, user = row
                if usable:
                    await session.execute(
                        update(User)
                        .where(User.id == user.id)
                        .values(password_hash=new_hash, credentials_changed_at=now)
                    )
                    await session.execute(
                        update(PasswordReset)
                        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
                        .values(used_at=now)
                    )
                audit.record(
                    session,
                    tenant_id=user.tenant_id,
                    user_id=user.id,
                    action=AuditAction.PASSWORD_CHANGE,
                    resource=RESOURCE,
                    resource_id=str(user.id),
                    success=usable,
                    origin=origin,
                    details={"via": "reset", "reset_id": str(reset.id)}
                    if usable
                    else {"via": "reset", "reason": "token_spent_or_expired"},
                )
        if row is None or not usable:
            await limiter.hit(IP_LIMIT, address)
            raise Invalid(
                "token", "This reset link is unknown, used or expired: ask for a new one."
            )
        await invalidate_or_schedule(
            cache, queue, session, tenant_id=user.tenant_id, tags=[user_tag(user.id)]
        )
