"""Whole answers, cached on the tags of the reads they were made of.

An operation whose every read came through the tagged cache (services/platform/recording.py)
leaves an entry: its answer under a key naming the document, its variables and the viewer's scope,
valid while every tag version those reads saw is unchanged, in the same cache epoch, and no
longer than the first of those reads stays fresh. A later identical operation is answered from
it with one Redis round trip (the versions checked, as every cached read checks them) and
without running a resolver. Which operations may be cached at all is the GraphQL edge's
decision (graph/response_cache.py); this module keeps the entries.

The entry's tags are known only once it has been computed, so each entry keeps a manifest (its
tags and watched keys) beside it in Redis, and this process keeps the manifests it has seen.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import orjson

from services.auth import Viewer
from services.platform.cache import Cache, CacheUnavailable, Spec
from services.platform.recording import Recording

KIND = "response"
TAGS_FIELD = "t"
WATCH_FIELD = "w"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """An answer's ``data`` as JSON, and what serving it again must redo or tell: the rate
    limits it counted against, how many cached reads it was made of, and the oldest class
    statistics it showed (their age and staleness are told at each serve)."""

    data: str
    limits: list[str]
    lookups: int
    statistics_calculated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Manifest:
    tags: tuple[str, ...]
    watch: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A stored answer still valid now; ``watched`` holds the watched keys' current values."""

    response: StoredResponse
    watched: dict[str, str | None]
    expires_in: float


def response_key(
    *,
    fingerprint: str,
    document: str,
    operation_name: str | None,
    variables: object,
    viewer: Viewer,
) -> str | None:
    """The entry's key: the schema's fingerprint, the document, the operation, the variables
    (canonical: sorted keys) and everything the viewer's rights are read from; None when the
    variables are not plain JSON."""
    try:
        canonical = orjson.dumps(
            [
                fingerprint,
                document,
                operation_name,
                variables or {},
                str(viewer.tenant_id),
                str(viewer.user_id),
                viewer.role.value,
                None if viewer.student_id is None else str(viewer.student_id),
                # A token from before a password change is refused; its answers are its own.
                viewer.issued_at_ms,
            ],
            option=orjson.OPT_SORT_KEYS,
        )
    except TypeError:
        return None
    return hashlib.sha256(canonical).hexdigest()


class ResponseCache:
    """Answers in ``cache`` (its L1 and L2, breaker and epoch), manifests in this process
    (at most ``manifests`` of them, least recently used dropped first)."""

    def __init__(self, *, cache: Cache, manifests: int = 10_000) -> None:
        self.cache = cache
        self._manifests: OrderedDict[tuple[uuid.UUID, str], Manifest] = OrderedDict()
        self._size = manifests

    async def lookup(self, tenant_id: uuid.UUID, key: str) -> CachedResponse | None:
        """The answer stored under ``key`` while it is valid and fresh; None otherwise (and
        whenever Redis cannot say)."""
        manifest = self._manifests.get((tenant_id, key))
        if manifest is None:
            manifest = await self._load_manifest(tenant_id, key)
            if manifest is None:
                return None
        else:
            self._manifests.move_to_end((tenant_id, key))
        found = await self.cache.peek(self._spec(tenant_id, key, manifest))
        if found is None:
            return None
        return CachedResponse(
            response=found.value,
            watched=dict(zip(manifest.watch, found.watched, strict=True)),
            expires_in=max(found.soft_expiry - self.cache.now(), 0.0),
        )

    async def store(
        self, tenant_id: uuid.UUID, key: str, response: StoredResponse, recording: Recording
    ) -> bool:
        """Keep ``response``, made of ``recording``'s reads, while their tags keep the
        versions they saw; False when it may not be kept (or a write came in between)."""
        if not recording.storable:
            return False
        manifest = Manifest(
            tags=tuple(sorted(recording.versions)), watch=tuple(sorted(recording.watch))
        )
        soft_expiry = min(recording.soft_expiry, self.cache.now() + self.cache.ttls[KIND])
        if soft_expiry <= self.cache.now():
            return False
        stored = await self.cache.put(
            self._spec(tenant_id, key, manifest),
            response,
            versions=recording.tag_versions(manifest.tags),
            soft_expiry=soft_expiry,
            fields={TAGS_FIELD: ",".join(manifest.tags), WATCH_FIELD: ",".join(manifest.watch)},
        )
        if stored:
            self._remember(tenant_id, key, manifest)
        return stored

    async def _load_manifest(self, tenant_id: uuid.UUID, key: str) -> Manifest | None:
        spec = self._spec(tenant_id, key, Manifest(tags=(), watch=()))
        try:
            tags, watch = await self.cache.read_fields(spec, TAGS_FIELD, WATCH_FIELD)
        except CacheUnavailable:
            return None
        if tags is None or watch is None:
            return None
        manifest = Manifest(
            tags=tuple(tag for tag in tags.split(",") if tag),
            watch=tuple(name for name in watch.split(",") if name),
        )
        self._remember(tenant_id, key, manifest)
        return manifest

    def _remember(self, tenant_id: uuid.UUID, key: str, manifest: Manifest) -> None:
        self._manifests[(tenant_id, key)] = manifest
        self._manifests.move_to_end((tenant_id, key))
        while len(self._manifests) > self._size:
            self._manifests.popitem(last=False)

    @staticmethod
    def _spec(tenant_id: uuid.UUID, key: str, manifest: Manifest) -> Spec[StoredResponse]:
        return Spec(
            tenant_id=tenant_id,
            kind=KIND,
            key=key,
            tags=manifest.tags,
            value_type=StoredResponse,
            compute=_never_computed,
            watch=manifest.watch,
        )


async def _never_computed() -> StoredResponse:
    raise RuntimeError("a stored answer is only ever peeked at and put, never computed")
