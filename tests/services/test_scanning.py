"""Scanners: the built-in signatures, and clamd itself (with an EICAR-only database)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.platform.scanning import (
    DENY_LIST_THREAT,
    EICAR,
    EICAR_THREAT,
    ClamdScanner,
    ScannerUnavailable,
    SignatureScanner,
    parse_clamd_reply,
)
from tests import files
from tests.servers import clamd, clamd_binary


async def chunked(content: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for cut in sorted(set(cuts)):
        yield content[start:cut]
        start = cut
    yield content[start:]


@given(
    before=st.binary(max_size=200),
    after=st.binary(max_size=200),
    cuts=st.lists(st.integers(min_value=0, max_value=468), max_size=6),
)
async def test_eicar_is_found_wherever_the_chunks_split_it(before, after, cuts):
    result = await SignatureScanner().scan(chunked(before + EICAR + after, cuts))
    assert not result.clean
    assert result.threats == (EICAR_THREAT,)


@given(content=st.binary(max_size=500), cuts=st.lists(st.integers(0, 500), max_size=6))
async def test_content_without_eicar_is_clean(content, cuts):
    if EICAR in content:
        return
    assert (await SignatureScanner().scan(chunked(content, cuts))).clean


async def test_the_deny_list_names_whole_files_by_sha256():
    content = files.pdf(b"known bad")
    scanner = SignatureScanner(deny_sha256={hashlib.sha256(content).hexdigest()})
    result = await scanner.scan(chunked(content, [10, 20]))
    assert result.threats == (DENY_LIST_THREAT,)
    assert (await scanner.scan(chunked(files.pdf(), []))).clean


def test_clamd_replies():
    assert parse_clamd_reply("stream: OK", engine="clamd").clean
    found = parse_clamd_reply("stream: Eicar-Test-Signature FOUND", engine="clamd")
    assert found.threats == ("Eicar-Test-Signature",)
    with pytest.raises(ScannerUnavailable):
        parse_clamd_reply("INSTREAM size limit exceeded. ERROR", engine="clamd")


async def test_an_unreachable_clamd_is_unavailable_not_clean(unused_tcp_port: int):
    scanner = ClamdScanner(host="127.0.0.1", port=unused_tcp_port, timeout=2)
    with pytest.raises(ScannerUnavailable):
        await scanner.scan(chunked(files.pdf(), []))
    assert not await scanner.ping()


@pytest.fixture(scope="module")
def clamd_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if clamd_binary() is None:
        pytest.skip("clamd is not installed (Debian package clamav-daemon; .ci/run installs it)")
    with clamd(Path(tmp_path_factory.mktemp("clamd"))) as url:
        yield url


async def test_clamd_finds_eicar_inside_a_pdf_and_passes_a_clean_one(clamd_url: str):
    scanner = ClamdScanner.from_url(clamd_url)
    assert await scanner.ping()
    infected = await scanner.scan(chunked(files.infected_pdf(), [5, 100]))
    assert not infected.clean
    assert "Eicar" in infected.threats[0]
    assert (await scanner.scan(chunked(files.pdf(), [3]))).clean
    big = files.pdf() + bytes(3 * 1024 * 1024)
    assert (await scanner.scan(chunked(big, [1024 * 1024, 2 * 1024 * 1024]))).clean
