"""Virus scanning of stored files: clamd over TCP, or a built-in signature scanner.

The built-in scanner is the embedded default: it knows the EICAR test file and a deny list of
SHA-256 digests, enough to exercise quarantine end to end without an antivirus engine. Set
``ROLLCALL_CLAMD_URL`` in production.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections.abc import AsyncIterable, Collection
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from services.platform.errors import ErrorCode, ServiceError

# The EICAR anti-virus test string (https://www.eicar.org); detected anywhere in a file, as
# ClamAV detects it, so that it can sit inside a file that passes type checks.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_THREAT = "Eicar-Test-Signature"
DENY_LIST_THREAT = "Rollcall.DenyList.SHA256"
CLAMD_CHUNK = 64 * 1024
CLAMD_TIMEOUT_SECONDS = 60.0


class ScannerUnavailable(ServiceError):
    """The scanner did not answer or could not scan; the job retries later."""

    code = ErrorCode.SERVICE_UNAVAILABLE


@dataclass(frozen=True, slots=True)
class ScanResult:
    clean: bool
    threats: tuple[str, ...]
    engine: str

    def as_dict(self) -> dict[str, object]:
        return {"clean": self.clean, "threats": list(self.threats), "engine": self.engine}


class Scanner(Protocol):
    name: str

    async def scan(self, chunks: AsyncIterable[bytes]) -> ScanResult: ...


@dataclass(frozen=True)
class SignatureScanner:
    """EICAR anywhere in the bytes, or a whole-file SHA-256 on the deny list."""

    deny_sha256: Collection[str] = field(default_factory=frozenset)
    name: str = "rollcall-signatures"

    async def scan(self, chunks: AsyncIterable[bytes]) -> ScanResult:
        digest = hashlib.sha256()
        carry = b""
        eicar = False
        async for chunk in chunks:
            digest.update(chunk)
            window = carry + chunk
            eicar = eicar or EICAR in window
            # Keep enough of the tail to find the string across a chunk boundary.
            carry = window[-(len(EICAR) - 1) :]
        threats = [EICAR_THREAT] if eicar else []
        if digest.hexdigest() in self.deny_sha256:
            threats.append(DENY_LIST_THREAT)
        return ScanResult(clean=not threats, threats=tuple(threats), engine=self.name)


@dataclass(frozen=True)
class ClamdScanner:
    """clamd's INSTREAM command over TCP: length-prefixed chunks, then a zero-length one."""

    host: str
    port: int
    timeout: float = CLAMD_TIMEOUT_SECONDS
    name: str = "clamd"

    @classmethod
    def from_url(cls, url: str) -> ClamdScanner:
        parts = urlsplit(url)
        if parts.scheme != "tcp" or not parts.hostname or not parts.port:
            raise ValueError("a clamd URL looks like tcp://host:port")
        return cls(host=parts.hostname, port=parts.port)

    async def _command(self, command: bytes, chunks: AsyncIterable[bytes] | None) -> bytes:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(b"z" + command + b"\0")
            if chunks is not None:
                async for chunk in chunks:
                    for start in range(0, len(chunk), CLAMD_CHUNK):
                        piece = chunk[start : start + CLAMD_CHUNK]
                        writer.write(struct.pack(">I", len(piece)) + piece)
                        await writer.drain()
                writer.write(struct.pack(">I", 0))
            await writer.drain()
            return (await reader.readuntil(b"\0")).rstrip(b"\0")
        finally:
            writer.close()

    async def ping(self) -> bool:
        try:
            reply = await asyncio.wait_for(self._command(b"PING", None), self.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return False
        return reply == b"PONG"

    async def scan(self, chunks: AsyncIterable[bytes]) -> ScanResult:
        try:
            reply = await asyncio.wait_for(self._command(b"INSTREAM", chunks), self.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            raise ScannerUnavailable(f"clamd at {self.host}:{self.port} did not answer.") from error
        return parse_clamd_reply(reply.decode("utf-8", "replace"), engine=self.name)


def parse_clamd_reply(reply: str, *, engine: str) -> ScanResult:
    """``stream: OK`` is clean, ``stream: <name> FOUND`` a threat; anything else an error."""
    _, _, verdict = reply.partition(": ")
    if verdict == "OK":
        return ScanResult(clean=True, threats=(), engine=engine)
    if verdict.endswith(" FOUND"):
        return ScanResult(clean=False, threats=(verdict.removesuffix(" FOUND"),), engine=engine)
    raise ScannerUnavailable(f"clamd could not scan the file: {reply}")


def create_scanner(*, clamd_url: str | None, deny_sha256: Collection[str]) -> Scanner:
    if clamd_url:
        return ClamdScanner.from_url(clamd_url)
    return SignatureScanner(deny_sha256=frozenset(deny_sha256))
