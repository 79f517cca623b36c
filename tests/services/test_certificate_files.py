"""Upload checks: type, extension, size and content agree before anything is stored."""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.certificate_files import (
    ACCEPTED_TYPES,
    MAX_FILE_NAME,
    MAX_FILE_SIZE,
    clean_file_name,
    inspect_file,
)
from services.platform.errors import Invalid
from tests import files


@pytest.mark.parametrize(
    ("content", "name", "declared"),
    [
        (files.pdf(), "note.pdf", "application/pdf"),
        (files.png(), "scan.PNG", "image/png"),
        (files.jpeg(), "photo.jpeg", "image/jpeg"),
        (files.jpeg(), "photo.jpg", "image/jpg"),
    ],
)
def test_accepted_files_pass_and_are_measured(content, name, declared):
    source = io.BytesIO(content)
    inspected = inspect_file(source, file_name=name, declared_type=declared)
    assert inspected.size == len(content)
    assert inspected.sha256 == hashlib.sha256(content).hexdigest()
    assert inspected.content_type in ACCEPTED_TYPES
    assert source.tell() == 0


@pytest.mark.parametrize(
    ("content", "name", "declared", "fragment"),
    [
        (files.executable(), "certificate.pdf", "application/pdf", "not a PDF"),
        (files.pdf(), "certificate.exe", "application/pdf", "does not match"),
        (files.pdf(), "certificate.png", "application/pdf", "does not match"),
        (files.png(), "scan.png", "image/jpeg", "does not match"),
        (files.pdf(), "certificate.pdf", "application/x-msdownload", "not accepted"),
        (files.pdf(), "certificate.pdf", None, "not accepted"),
        (b"", "empty.pdf", "application/pdf", "empty"),
        (files.pdf(), "../", "application/pdf", "needs a name"),
    ],
)
def test_bad_files_are_refused_naming_file(content, name, declared, fragment):
    with pytest.raises(Invalid) as refused:
        inspect_file(io.BytesIO(content), file_name=name, declared_type=declared)
    assert refused.value.field == "file"
    assert fragment in refused.value.message


class CountingReader(io.BytesIO):
    def __init__(self, content: bytes) -> None:
        super().__init__(content)
        self.delivered = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.delivered += len(chunk)
        return chunk


def test_one_byte_over_ten_megabytes_is_refused_without_reading_further():
    content = files.pdf() + bytes(MAX_FILE_SIZE + 1 - len(files.pdf())) + bytes(5 * 1024 * 1024)
    source = CountingReader(content)
    with pytest.raises(Invalid, match="larger than 10 MB") as refused:
        inspect_file(source, file_name="big.pdf", declared_type="application/pdf")
    assert refused.value.field == "file"
    assert source.delivered < MAX_FILE_SIZE + 512 * 1024


def test_exactly_ten_megabytes_is_accepted():
    content = files.pdf() + bytes(MAX_FILE_SIZE - len(files.pdf()))
    inspected = inspect_file(
        io.BytesIO(content), file_name="big.pdf", declared_type="application/pdf"
    )
    assert inspected.size == MAX_FILE_SIZE


@given(
    content=st.binary(max_size=64),
    name=st.text(max_size=300),
    declared=st.sampled_from([*ACCEPTED_TYPES, "text/plain", "", "image/jpg"]),
)
def test_any_upload_is_accepted_only_when_everything_agrees(content, name, declared):
    """Either a VALIDATION_ERROR on ``file`` or an upload whose name, type and first bytes all
    agree: never another exception."""
    try:
        inspected = inspect_file(io.BytesIO(content), file_name=name, declared_type=declared)
    except Invalid as refused:
        assert refused.field == "file"
        return
    _, extensions, magic = ACCEPTED_TYPES[inspected.content_type]
    assert content.startswith(magic)
    assert any(inspected.file_name.lower().endswith(ext) for ext in extensions)
    assert inspected.size == len(content)


@given(st.text(max_size=400))
def test_clean_names_have_no_folders_or_control_characters(name):
    try:
        cleaned = clean_file_name(name)
    except Invalid:
        return
    assert cleaned
    assert "/" not in cleaned and "\\" not in cleaned
    assert all(ord(c) >= 32 and c != "\x7f" for c in cleaned)
    assert len(cleaned) <= MAX_FILE_NAME


def test_long_names_keep_their_extension():
    assert clean_file_name("a" * 400 + ".pdf").endswith(".pdf")
    assert len(clean_file_name("a" * 400 + ".pdf")) == MAX_FILE_NAME
    assert clean_file_name("C:\\Users\\x\\sick note.pdf") == "sick note.pdf"
