"""Names and e-mail addresses as people type them: checked and normalised in one place, for
the administration mutations and the roster import alike."""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

from services.platform.errors import Invalid

CLASSROOM_NAME_LENGTH = 100
PERSON_NAME_LENGTH = 200
EMAIL_LENGTH = 254
# Control characters, lone surrogates (undecodable bytes), unassigned code points.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Cn"})


def clean_name(value: str, *, field: str, limit: int, what: str = "The name") -> str:
    """``value`` with its spaces collapsed; VALIDATION_ERROR on ``field`` when it is blank, too
    long or holds characters no name has."""
    if any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in value):
        raise Invalid(field, f"{what} holds control characters or bytes that are not text.")
    name = " ".join(value.split())
    if not name:
        raise Invalid(field, f"{what} is required.")
    if len(name) > limit:
        raise Invalid(field, f"{what} is longer than {limit} characters.")
    return name


def clean_email(value: str, *, field: str) -> str:
    """The address in the form accounts keep (lower case, as login compares it);
    VALIDATION_ERROR on ``field`` when it is not a well-formed address."""
    text = value.strip()
    if not text:
        raise Invalid(field, "The email address is required.")
    if len(text) > EMAIL_LENGTH:
        raise Invalid(field, f"The email address is longer than {EMAIL_LENGTH} characters.")
    try:
        # No DNS lookups (an import of thousands must not wait on them); ``.test`` addresses
        # are allowed, as schools' test accounts and this project's own tests use them.
        checked = validate_email(text, check_deliverability=False, test_environment=True)
    except EmailNotValidError as error:
        raise Invalid(field, f"{text!r} is not a valid email address: {error}") from None
    return checked.normalized.lower()
