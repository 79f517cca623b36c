"""Apollo's automatic persisted queries: documents kept in Redis by their SHA-256.

A client sends only the hash; when the document is unknown it sends hash and document once,
and the hash alone from then on (small requests, and GETs a CDN can cache). Documents are
kept for a week since last stored and may be evicted: a client then simply sends it again.
"""

from __future__ import annotations

import hashlib
import logging
import re

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.platform.errors import ErrorCode, Invalid, ServiceError

KEY_PREFIX = "rollcall:apq:"
TTL_SECONDS = 7 * 24 * 3600
MAX_DOCUMENT_BYTES = 64 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
logger = logging.getLogger(__name__)


class PersistedQueryNotFound(ServiceError):
    """Apollo clients answer this (message and code both) by sending the document."""

    code = ErrorCode.PERSISTED_QUERY_NOT_FOUND

    def __init__(self) -> None:
        super().__init__("PersistedQueryNotFound")


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def requested_hash(extension: object) -> str:
    """The hash of ``extensions.persistedQuery`` (version 1), or VALIDATION_ERROR."""
    if not isinstance(extension, dict) or extension.get("version") != 1:
        raise Invalid("extensions.persistedQuery", "Only persisted query version 1 is supported.")
    digest = extension.get("sha256Hash")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise Invalid("extensions.persistedQuery.sha256Hash", "sha256Hash is not a SHA-256 hex.")
    return digest


class PersistedQueries:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def resolve(self, digest: str, document: str | None) -> str:
        """The document for ``digest``: the one sent (checked against it and kept), or the
        one kept before. PersistedQueryNotFound when neither."""
        if document is None:
            try:
                found = await self._redis.get(KEY_PREFIX + digest)
            except (RedisError, OSError) as error:
                logger.warning("persisted queries unavailable: %s", error)
                found = None
            if found is None:
                raise PersistedQueryNotFound()
            return found.decode() if isinstance(found, bytes) else str(found)
        if document_hash(document) != digest:
            raise Invalid(
                "extensions.persistedQuery.sha256Hash", "provided sha does not match query"
            )
        if len(document.encode()) > MAX_DOCUMENT_BYTES:
            raise Invalid("query", f"Documents are limited to {MAX_DOCUMENT_BYTES} bytes.")
        return document

    async def keep(self, digest: str, document: str) -> None:
        """Keep a document that parsed and validated (never one that did not)."""
        try:
            await self._redis.set(KEY_PREFIX + digest, document, ex=TTL_SECONDS)
        except (RedisError, OSError) as error:
            logger.warning("persisted query not kept: %s", error)
