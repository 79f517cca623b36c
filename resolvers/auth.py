"""Logging in and changing one's password."""

from __future__ import annotations

from resolvers.context import Info
from services import auth
from services.logins import change_password as change
from services.logins import log_in


async def login(info: Info, tenant: str, email: str, password: str) -> auth.LoginResult:
    context = info.context
    with context.noting_refusal():
        result = await log_in(
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
    context.act_as(auth.decode_token(result.token, secret=context.settings.jwt_secret))
    return result


async def change_password(info: Info, current_password: str, new_password: str) -> None:
    context = info.context
    with context.noting_refusal():
        await change(
            session_factory=context.session_factory,
            limiter=context.limiter,
            viewer=context.viewer,
            current_password=current_password,
            new_password=new_password,
            origin=context.origin,
            cache=context.cache,
            queue=context.redis,
            clock=context.now,
        )
