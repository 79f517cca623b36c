"""The verified-token cache: a token is verified once, then only its expiry is checked; forged
tokens are never kept; the cache stays within its size."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services import auth
from services.auth import TokenVerifier, Viewer, issue_token
from services.models import Role
from services.platform.errors import Unauthenticated

SECRET = "s" * 40


def token(ttl: int = 60, *, now: datetime | None = None, secret: str = SECRET) -> str:
    viewer = Viewer(user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role=Role.STUDENT)
    return issue_token(viewer, secret=secret, ttl_seconds=ttl, now=now or datetime.now(UTC))


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = auth.decode_token

    def counting(text: str, *, secret: str) -> Viewer:
        seen.append(text)
        return real(text, secret=secret)

    monkeypatch.setattr(auth, "decode_token", counting)
    return seen


def test_a_token_is_verified_once_then_answered_from_memory(decodes):
    verifier = TokenVerifier(secret=SECRET)
    issued = token()
    first = verifier.verify(issued)
    assert verifier.verify(issued) is first
    assert decodes == [issued]


def test_a_remembered_token_still_expires(decodes):
    now = [datetime.now(UTC).timestamp()]
    verifier = TokenVerifier(secret=SECRET, clock=lambda: now[0])
    issued = token(ttl=30)
    verifier.verify(issued)
    now[0] += 31
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(issued)
    # Forgotten: the next try is verified whole again (PyJWT reads the real clock).
    verifier.verify(issued)
    assert decodes == [issued, issued]


def test_forged_tokens_are_refused_every_time_and_never_kept(decodes):
    verifier = TokenVerifier(secret=SECRET)
    forged = token(secret="another secret, not the server's")
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="invalid"):
            verifier.verify(forged)
    assert decodes == [forged, forged]


def test_the_least_recently_used_token_leaves_first(decodes):
    verifier = TokenVerifier(secret=SECRET, size=2)
    a, b, c = token(), token(), token()
    verifier.verify(a)
    verifier.verify(b)
    verifier.verify(a)  # a is now the most recent
    verifier.verify(c)  # b leaves
    decodes.clear()
    verifier.verify(a)
    verifier.verify(c)
    verifier.verify(b)
    assert decodes == [b]
