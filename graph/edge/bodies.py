"""What a request body must satisfy before any of it is parsed.

Every body is counted as it arrives and refused (413) the moment it exceeds its cap, or at
once when its declared length does, so that an oversized body is never buffered whole: a
JSON body has ``max_body_bytes`` (1 MiB by default), a multipart upload one file's limit plus
room for the operation. Multipart is a "simple" content type: a browser sends one cross-site
without asking, so it must also carry a header no simple request can (Apollo's CSRF
prevention: ``Apollo-Require-Preflight`` or ``X-Apollo-Operation-Name``).
"""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope

from services.certificate_files import MAX_FILE_SIZE

PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name")
# The operation, the map and the parts' headers: generous for one upload mutation.
OPERATION_ALLOWANCE = 64 * 1024
MAX_MULTIPART_BODY = MAX_FILE_SIZE + OPERATION_ALLOWANCE
# A refused body is read (and dropped) up to this much before answering: a client still
# writing its body when the connection closes often never reads the 413 (asyncio clients see
# a reset). Larger bodies are cut off at once, the connection closed.
DRAIN_LIMIT = 2 * MAX_MULTIPART_BODY
DRAIN_SECONDS = 5.0


class BodyRefused(Exception):
    """Not a ValueError, so that strawberry's form parsing does not swallow it."""

    def __init__(
        self, status_code: int, message: str, field: str | None = None, received: int = 0
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.field = field
        self.received = received  # bytes of the body read before the refusal


def upload_too_large(received: int = 0) -> BodyRefused:
    return BodyRefused(
        413,
        f"The upload is larger than {MAX_FILE_SIZE // (1024 * 1024)} MB; send one file per "
        "request.",
        field="file",
        received=received,
    )


def body_too_large(limit: int, received: int = 0) -> BodyRefused:
    return BodyRefused(413, f"The request body is larger than {limit:,} bytes.", received=received)


def is_multipart(scope: Scope) -> bool:
    content_type = Headers(scope=scope).get("content-type", "")
    return scope["method"] == "POST" and content_type.lower().startswith("multipart/form-data")


def guarded(scope: Scope, receive: Receive, *, max_body_bytes: int) -> Receive:
    """``receive`` that raises BodyRefused for a declared length over the body's cap (before
    reading), once more than the cap has arrived (for chunked bodies that declare none), or,
    for a multipart request, a missing preflight header."""
    headers = Headers(scope=scope)
    if multipart := is_multipart(scope):
        if not any(headers.get(name, "").strip() for name in PREFLIGHT_HEADERS):
            raise BodyRefused(
                400,
                "Multipart requests must send the header Apollo-Require-Preflight: true "
                "(CSRF protection).",
            )
        limit = MAX_MULTIPART_BODY
    else:
        limit = max_body_bytes

    def too_large(received: int = 0) -> BodyRefused:
        return upload_too_large(received) if multipart else body_too_large(limit, received)

    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large()
    received = 0

    async def counting() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large(received)
        return message

    return counting


async def drain(scope: Scope, receive: Receive, *, received: int) -> bool:
    """Read and drop the rest of a refused body (``received`` bytes of it read already) when
    the whole is at most DRAIN_LIMIT; whether it was read to the end (the connection may then
    be kept)."""
    declared = Headers(scope=scope).get("content-length", "")
    if declared.isdigit() and int(declared) > DRAIN_LIMIT:
        return False
    budget = DRAIN_LIMIT - received
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while budget > 0:
                message = await receive()
                if message["type"] != "http.request":
                    return False
                budget -= len(message.get("body", b""))
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        return False
    return False
