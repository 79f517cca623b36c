"""Who the caller is: password hashing, signed tokens and the ``Viewer`` they decode to."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import Role, Student, Tenant, User
from services.platform.errors import Invalid, Unauthenticated

TOKEN_ALGORITHM = "HS256"
TOKEN_ISSUER = "rollcall"
# OWASP's recommended Argon2id settings (19 MiB, 2 passes, 1 lane): about 23 ms of CPU a hash
# here, where argon2-cffi's default (64 MiB, 3 passes, 4 lanes) took 190 ms, so a morning's
# logins queued behind one another on 2 cores (benchmarks/load.py). Hashes made with other
# settings still verify, and are replaced at the next login (``needs_rehash``).
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the email is unknown, so a miss costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash("rollcall-timing-equaliser")


@dataclass(frozen=True, slots=True)
class Viewer:
    """The authenticated caller, decoded from a token without touching the database."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: Role
    student_id: uuid.UUID | None = None
    expires_at: datetime | None = None
    # Milliseconds since the epoch: ``iat`` counts whole seconds, too coarse to tell a token
    # from a password change in the same second.
    issued_at_ms: int | None = None


class LoginFailed(Unauthenticated):
    """Wrong credentials. The client sees one message; the audit log sees why, and whose."""

    def __init__(
        self, reason: str, *, tenant_id: uuid.UUID | None, user_id: uuid.UUID | None
    ) -> None:
        super().__init__("The tenant, email or password is wrong.")
        self.reason = reason
        self.tenant_id = tenant_id
        self.user_id = user_id


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    expires_at: datetime
    user: User
    tenant: Tenant
    student: Student | None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def needs_rehash(password_hash: str | None) -> bool:
    """The hash was made with other settings than today's (an account without a password
    has nothing to rehash)."""
    if password_hash is None:
        return False
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; never for an account without a password, which costs
    the same time as a wrong one."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def issue_token(viewer: Viewer, *, secret: str, ttl_seconds: int, now: datetime) -> str:
    claims = {
        "sub": str(viewer.user_id),
        "tid": str(viewer.tenant_id),
        "role": viewer.role.value,
        "iss": TOKEN_ISSUER,
        "iat": int(now.timestamp()),
        "iat_ms": int(now.timestamp() * 1000),
        "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    if viewer.student_id is not None:
        claims["sid"] = str(viewer.student_id)
    return jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM)


def decode_token(token: str, *, secret: str) -> Viewer:
    """The viewer a token names; Unauthenticated when it is malformed, forged or expired."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[TOKEN_ALGORITHM],
            issuer=TOKEN_ISSUER,
            options={"require": ["sub", "tid", "role", "exp"]},
        )
        student = claims.get("sid")
        issued_ms = claims.get("iat_ms")
        if issued_ms is None and "iat" in claims:
            issued_ms = int(claims["iat"]) * 1000
        return Viewer(
            user_id=uuid.UUID(claims["sub"]),
            tenant_id=uuid.UUID(claims["tid"]),
            role=Role(claims["role"]),
            student_id=uuid.UUID(student) if student else None,
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            issued_at_ms=None if issued_ms is None else int(issued_ms),
        )
    except jwt.ExpiredSignatureError as error:
        raise Unauthenticated("The token has expired; log in again.") from error
    except (jwt.InvalidTokenError, ValueError, KeyError) as error:
        raise Unauthenticated("The token is invalid.") from error


class TokenVerifier:
    """Tokens verified once are remembered, up to ``size`` of them, least recently used out.

    Verifying a token's signature costs ~36 µs of CPU on every request; what it decodes to
    depends on the token and the secret only, so a hit answers the same ``Viewer`` and only
    its expiry is checked again. Refused tokens are never kept (a stream of forged ones would
    only flush the good), and the account's current state is checked apart, on every request
    (``services.credentials``).
    """

    def __init__(
        self, *, secret: str, size: int = 10_000, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self._size = size
        self._clock = clock
        self._verified: OrderedDict[str, Viewer] = OrderedDict()

    def verify(self, token: str) -> Viewer:
        """The viewer ``token`` names; Unauthenticated as ``decode_token`` says."""
        viewer = self._verified.get(token)
        if viewer is None:
            viewer = decode_token(token, secret=self._secret)
            self._verified[token] = viewer
            if len(self._verified) > self._size:
                self._verified.popitem(last=False)
            return viewer
        if viewer.expires_at is not None and viewer.expires_at.timestamp() <= self._clock():
            del self._verified[token]
            raise Unauthenticated("The token has expired; log in again.")
        self._verified.move_to_end(token)
        return viewer


# The columns' own bounds (a password is hashed, but none longer was ever set): anything longer
# is refused before it reaches a limit's key, the audit log or the hash.
CREDENTIAL_LENGTHS = {"tenant": 63, "email": 254, "password": 1024}


def check_credentials_shape(tenant_slug: str, email: str, password: str) -> None:
    """VALIDATION_ERROR naming the first credential that is missing or too long."""
    for field, value in (
        ("tenant", tenant_slug.strip()),
        ("email", email.strip()),
        ("password", password),
    ):
        if not value:
            raise Invalid(field, f"The {field} is required.")
        if len(value) > (longest := CREDENTIAL_LENGTHS[field]):
            raise Invalid(field, f"The {field} is longer than {longest} characters.")


async def login(
    *,
    session: AsyncSession,
    tenant_slug: str,
    email: str,
    password: str,
    secret: str,
    ttl_seconds: int,
    now: datetime | None = None,
) -> LoginResult:
    """Check the credentials (``check_credentials_shape`` passed) and issue a token. Every
    failure looks the same to the caller."""
    row = (
        await session.execute(
            select(User, Tenant, Student)
            .join(Tenant, Tenant.id == User.tenant_id)
            .outerjoin(Student, Student.user_id == User.id)
            .where(Tenant.slug == tenant_slug.strip().lower())
            .where(User.email == email.strip().lower())
            .where(User.active)
        )
    ).first()
    # In a thread: argon2 takes ~0.1-0.2 s of CPU (and releases the GIL); on the event loop it
    # would stall every other request of the process that long. An unknown account and one
    # without a password are verified against a dummy hash: each costs what a wrong password
    # costs.
    matches = await asyncio.to_thread(
        verify_password, row[0].password_hash if row else None, password
    )
    if row is not None and not matches:
        reason = "wrong_password" if row[0].password_hash else "no_password_set"
        raise LoginFailed(reason, tenant_id=row[1].id, user_id=row[0].id)
    if row is None:
        tenant_id = await session.scalar(
            select(Tenant.id).where(Tenant.slug == tenant_slug.strip().lower())
        )
        reason = "unknown_tenant" if tenant_id is None else "unknown_or_inactive_user"
        raise LoginFailed(reason, tenant_id=tenant_id, user_id=None)
    user, tenant, student = row
    now = now or datetime.now(UTC)
    viewer = Viewer(
        user_id=user.id,
        tenant_id=tenant.id,
        role=user.role,
        student_id=student.id if student else None,
    )
    token = issue_token(viewer, secret=secret, ttl_seconds=ttl_seconds, now=now)
    return LoginResult(
        token=token,
        expires_at=now + timedelta(seconds=ttl_seconds),
        user=user,
        tenant=tenant,
        student=student,
    )
