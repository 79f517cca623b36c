"""A medical certificate's file, before anything is stored: its name cleaned, its type told by
its first bytes (not by what the client claims), its size bounded, and the dates it covers
checked."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import BinaryIO

from services.platform.errors import Invalid

MAX_FILE_SIZE = 10 * 1024 * 1024
MAX_FILE_NAME = 255
MAX_COVERED_DAYS = 60
MAX_TEXT = 1000
READ_CHUNK = 256 * 1024
# What each accepted type is called, its extensions, and how its content starts.
ACCEPTED_TYPES: Mapping[str, tuple[str, frozenset[str], bytes]] = {
    "application/pdf": ("a PDF", frozenset({".pdf"}), b"%PDF-"),
    "image/png": ("a PNG image", frozenset({".png"}), b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": ("a JPEG image", frozenset({".jpg", ".jpeg"}), b"\xff\xd8\xff"),
}
TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}


@dataclass(frozen=True, slots=True)
class Inspected:
    """An upload that passed every check, with what was learned reading it."""

    file_name: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Cover:
    """The dates a certificate covers, and what the uploader says about it."""

    covers_from: date
    covers_to: date
    description: str | None


def clean_file_name(name: str | None) -> str:
    """The name without any folder part or control characters, NFC, at most 255 characters
    (the extension kept); VALIDATION_ERROR naming ``file`` when nothing is left."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    normal = unicodedata.normalize("NFC", base)
    base = "".join(c for c in normal if unicodedata.category(c)[0] != "C")
    base = base.strip().strip(".")
    if not base:
        raise Invalid("file", "The file needs a name with an extension (.pdf, .png, .jpg).")
    if len(base) > MAX_FILE_NAME:
        stem, dot, extension = base.rpartition(".")
        keep = MAX_FILE_NAME - len(extension) - 1
        base = f"{stem[:keep]}.{extension}" if dot and keep > 0 else base[:MAX_FILE_NAME]
    return base


def inspect_file(
    source: BinaryIO,
    *,
    file_name: str | None,
    declared_type: str | None,
    limit: int = MAX_FILE_SIZE,
) -> Inspected:
    """Check an upload before anything is stored: extension and declared type in the accepted
    set and agreeing, at most ``limit`` bytes (reading stops at the first byte over), and the
    content starting as its type must. Leaves ``source`` rewound. VALIDATION_ERROR naming
    ``file`` for any failure."""
    name = clean_file_name(file_name)
    extension = "." + name.rpartition(".")[2].lower() if "." in name else ""
    declared = (declared_type or "").split(";", 1)[0].strip().lower()
    declared = TYPE_ALIASES.get(declared, declared)
    if declared not in ACCEPTED_TYPES:
        raise Invalid(
            "file",
            f"Files of type {declared or 'unknown'!r} are not accepted: send a PDF, PNG or JPEG.",
        )
    label, extensions, magic = ACCEPTED_TYPES[declared]
    if extension not in extensions:
        raise Invalid(
            "file",
            f"The name ends in {extension or 'no extension'}, which does not match the declared "
            f"type {declared} (expected {', '.join(sorted(extensions))}).",
        )
    digest = hashlib.sha256()
    size = 0
    head = b""
    while chunk := source.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise Invalid("file", f"The file is larger than {limit // (1024 * 1024)} MB.")
        if len(head) < len(magic):
            head += chunk[: len(magic) - len(head)]
        digest.update(chunk)
    if size == 0:
        raise Invalid("file", "The file is empty.")
    if not head.startswith(magic):
        raise Invalid("file", f"The file's content is not {label}, as its name and type claim.")
    source.seek(0)
    return Inspected(file_name=name, content_type=declared, size=size, sha256=digest.hexdigest())


def validate_cover(cover: Cover, *, today: date) -> None:
    if cover.covers_from > cover.covers_to:
        raise Invalid("input.coversTo", "coversTo must not be before coversFrom.")
    if (cover.covers_to - cover.covers_from).days + 1 > MAX_COVERED_DAYS:
        raise Invalid("input.coversTo", f"A certificate covers at most {MAX_COVERED_DAYS} days.")
    if cover.covers_from > today + timedelta(days=MAX_COVERED_DAYS):
        raise Invalid("input.coversFrom", "coversFrom is too far in the future.")
    if cover.description is not None and len(cover.description) > MAX_TEXT:
        raise Invalid("input.description", f"The description is limited to {MAX_TEXT} characters.")
