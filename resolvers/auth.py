"""Logging in."""

from __future__ import annotations

from resolvers.context import Info
from services import auth


async def login(info: Info, tenant: str, email: str, password: str) -> auth.LoginResult:
    context = info.context
    async with context.session_factory() as session:
        return await auth.login(
            session=session,
            tenant_slug=tenant,
            email=email,
            password=password,
            secret=context.settings.jwt_secret,
            ttl_seconds=context.settings.jwt_ttl_seconds,
            now=context.now(),
        )
