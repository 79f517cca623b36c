"""Whether a token-signing secret is fit for production: not published, and random enough."""

from __future__ import annotations

import math
import string
from collections import Counter

DEVELOPMENT_JWT_SECRET = "rollcall-development-secret-not-for-production-use"
# Every secret written in this repository's code, docs and examples: anyone who read them can
# sign tokens (tests/services/test_signing_secret.py keeps this list complete).
PUBLISHED_SECRETS = frozenset(
    {
        DEVELOPMENT_JWT_SECRET,
        "change-me-to-a-random-secret-of-at-least-32-characters",
    }
)
MIN_BITS = 256  # 32 random bytes
MIN_SPREAD_BITS = 128  # what the characters' frequencies alone carry: refuses long repeats
_CLASSES = (string.digits, string.ascii_lowercase, string.ascii_uppercase, "-_")


def estimated_bits(secret: str) -> float:
    """An upper bound of the secret's entropy: its length times the bits of the alphabet it
    is drawn from (hex; else digits, lower and upper case, ``-_`` and 32 for anything else)."""
    characters = set(secret)
    if characters <= set("0123456789abcdef"):
        alphabet = 16
    else:
        alphabet = sum(len(letters) for letters in _CLASSES if characters & set(letters))
        if characters - set("".join(_CLASSES)):
            alphabet += 32
    return len(secret) * math.log2(max(alphabet, 2))


def spread_bits(secret: str) -> float:
    """The secret's length times the Shannon entropy of its characters' frequencies."""
    counts = Counter(secret).values()
    return -sum(count * math.log2(count / len(secret)) for count in counts)


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` must not sign production tokens, or None when it may."""
    if secret.strip() in PUBLISHED_SECRETS:
        return "is a published example secret: anyone who read the source can sign tokens"
    if estimated_bits(secret) < MIN_BITS or spread_bits(secret) < MIN_SPREAD_BITS:
        return "has less than 32 bytes of entropy: make one with `openssl rand -hex 32`"
    return None
