"""Production refuses a published or guessable token-signing secret, at start-up."""

from __future__ import annotations

import base64
import re
import secrets
import subprocess
from pathlib import Path

import pytest

from services.platform.settings import Settings, SettingsError
from services.platform.signing_secret import DEVELOPMENT_JWT_SECRET, PUBLISHED_SECRETS
from tests.factories import run_rollcall

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "ROLLCALL_ENV": "production",
    "ROLLCALL_DATABASE_URL": "postgresql+asyncpg://u@db/rollcall",
    "ROLLCALL_REDIS_URL": "redis://redis:6379/0",
}
# A secret written as a value: `JWT_SECRET=…`, `JWT_SECRET: "…"`, `jwt_secret = "…"`.
WRITTEN_SECRET = re.compile(
    r"""JWT_SECRET["']?\s*[:=]\s*(?:["']([^"'\s$]{8,})["']|([^"'\s$,)]{8,})\s*$)""",
    re.IGNORECASE | re.MULTILINE,
)


def production(secret: str) -> Settings:
    return Settings.from_env({**PRODUCTION, "ROLLCALL_JWT_SECRET": secret})


@pytest.mark.parametrize(
    "secret",
    [
        DEVELOPMENT_JWT_SECRET,
        f"  {DEVELOPMENT_JWT_SECRET} ",
        "change-me-to-a-random-secret-of-at-least-32-characters",
        "x" * 64,
        "abababababababababababababababababababab",
        "3f9a0c7e5b1d2e4f6a8c0b9d7e5f3a1c",  # 16 random bytes: long enough, not random enough
    ],
)
def test_production_refuses_a_published_or_weak_secret(secret):
    with pytest.raises(SettingsError, match="ROLLCALL_JWT_SECRET"):
        production(secret)


@pytest.mark.parametrize(
    "encode",
    [bytes.hex, lambda key: base64.urlsafe_b64encode(key).decode()],
    ids=["hex", "base64url"],
)
def test_production_accepts_32_random_bytes_however_written(encode):
    for _ in range(200):
        written = encode(secrets.token_bytes(32))
        assert production(written).jwt_secret == written


def test_development_keeps_its_default_secret():
    assert Settings.from_env({}).jwt_secret == DEVELOPMENT_JWT_SECRET


def test_every_secret_written_in_the_repository_is_refused():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    written = set()
    for name in tracked:
        path = ROOT / name
        if path.suffix in {".png", ".svg", ".ico", ".gz"} or "vendor" in path.parts:
            continue
        if name.startswith("tests/"):
            continue  # tests sign with their own throwaway secrets, never in production
        text = path.read_text(errors="ignore")
        written |= {next(filter(None, m.groups())) for m in WRITTEN_SECRET.finditer(text)}
    written |= {DEVELOPMENT_JWT_SECRET}
    assert "change-me-to-a-random-secret-of-at-least-32-characters" in written  # .env.example
    assert written <= PUBLISHED_SECRETS


def test_serve_in_production_with_the_development_secret_exits_with_the_reason():
    env = {**PRODUCTION, "ROLLCALL_JWT_SECRET": DEVELOPMENT_JWT_SECRET, "PATH": "/usr/bin:/bin"}
    done = run_rollcall("serve", env=env, timeout=60)
    assert done.returncode != 0
    assert "ROLLCALL_JWT_SECRET is a published example secret" in done.stderr
