"""Logging in."""

from __future__ import annotations

from resolvers.context import Info
from services import auth
from services.logins import log_in
from services.rate_limits import RateLimited


async def login(info: Info, tenant: str, email: str, password: str) -> auth.LoginResult:
    context = info.context
    try:
        return await log_in(
            session_factory=context.session_factory,
            limiter=context.limiter,
            tenant_slug=tenant,
            email=email,
            password=password,
            origin=context.origin,
            secret=context.settings.jwt_secret,
            ttl_seconds=context.settings.jwt_ttl_seconds,
            now=context.now(),
        )
    except RateLimited as refused:
        context.rate_limits.note(refused.quota)
        raise
