"""Sample files for upload tests: minimal but real PDF, PNG and JPEG, and bad ones."""

from __future__ import annotations

import struct
import zlib

from services.platform.scanning import EICAR


def pdf(body: bytes = b"") -> bytes:
    """A one-page PDF; ``body`` goes into a comment, where it changes nothing."""
    return (
        b"%PDF-1.4\n"
        b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >> endobj\n"
        + (b"% " + body + b"\n" if body else b"")
        + b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )


def png() -> bytes:
    """A 1x1 white PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\xff\xff"))
        + chunk(b"IEND", b"")
    )


def jpeg() -> bytes:
    """The start of a JFIF file: enough for a type check."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(64)


def executable() -> bytes:
    """The start of a Windows PE executable (``MZ`` header)."""
    return b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(240)


def infected_pdf() -> bytes:
    """A well-formed PDF carrying the EICAR test string."""
    return pdf(EICAR)
