"""Logging in, the viewer's account, and changing one's password."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from resolvers.context import Info
from resolvers.loaders import load_existing
from services import auth, models
from services.logins import change_password as change
from services.logins import log_in
from services.rate_limits import RateLimited


@dataclass(frozen=True, slots=True)
class Account:
    user: models.User
    tenant: models.Tenant
    student: models.Student | None


async def account(info: Info) -> Account:
    """The viewer's user, tenant and student, read at once (each its own loader batch)."""
    context = info.context
    viewer = context.viewer
    user, tenant, *student = await asyncio.gather(
        load_existing(context.loaders.users, viewer.user_id, "account"),
        context.tenant(),
        *([context.loaders.students.load(viewer.student_id)] if viewer.student_id else []),
    )
    return Account(user=user, tenant=tenant, student=student[0] if student else None)


async def login(info: Info, tenant: str, email: str, password: str) -> auth.LoginResult:
    context = info.context
    try:
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
    except RateLimited as refused:
        context.rate_limits.note(refused.quota)
        raise
    context.act_as(auth.decode_token(result.token, secret=context.settings.jwt_secret))
    return result


async def change_password(info: Info, current_password: str, new_password: str) -> None:
    context = info.context
    try:
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
    except RateLimited as refused:
        context.rate_limits.note(refused.quota)
        raise
