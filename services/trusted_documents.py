"""Trusted documents: the GraphQL operations this API agrees to run for restricted callers.

Operators register documents ahead of time (``rollcall documents register FILE…``) from
``.graphql`` files or Apollo's persisted query manifests; each is kept by the SHA-256 of its
text. Partner tokens may run only registered documents; ``ROLLCALL_TRUSTED_DOCUMENTS`` extends
that to everyone (``enforce``) or first reports who would be refused (``log``), and
``ROLLCALL_TRUSTED_DOCUMENTS_CLIENTS`` sets the mode per client (the ``apollographql-client-name``
header) so first-party clients can be moved over one at a time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import orjson
from graphql import GraphQLSyntaxError, OperationDefinitionNode, parse
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from services.models import Role, TrustedDocument
from services.platform.db import SessionFactory
from services.platform.errors import ErrorCode, ServiceError
from services.platform.persisted_queries import document_hash
from services.platform.settings import TrustMode

APOLLO_MANIFEST_FORMAT = "apollo-persisted-query-manifest"
CLIENT_HEADER = "apollographql-client-name"
# How long a process trusts what it read: a registration or a removal reaches every API process
# within this time.
CACHE_SECONDS = 30.0
CACHE_ENTRIES = 10_000


class DocumentNotTrusted(ServiceError):
    code = ErrorCode.PERSISTED_QUERY_NOT_IN_LIST

    def __init__(self) -> None:
        super().__init__(
            "This operation is not a registered (trusted) document: send the sha256Hash of a "
            "registered document in extensions.persistedQuery, or its exact text."
        )


class ManifestError(ValueError):
    """A file that cannot be registered; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Registration:
    sha256: str
    document: str
    operation_names: tuple[str, ...]
    manifest: str  # where it came from, as ``documents list`` shows it


def operation_names(document: str) -> tuple[str, ...]:
    """The named operations of ``document``; ManifestError when it does not parse or holds
    an anonymous operation (an allow-list entry should say what it is)."""
    try:
        parsed = parse(document, no_location=True)
    except GraphQLSyntaxError as error:
        raise ManifestError(f"does not parse: {error.message}") from error
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    if not operations:
        raise ManifestError("holds no operation")
    if any(operation.name is None for operation in operations):
        raise ManifestError("holds an anonymous operation: name every operation")
    return tuple(operation.name.value for operation in operations if operation.name)


def read_manifest(text: str, *, source: str, name: str) -> list[Registration]:
    """The documents of one file (``source``), recorded as from manifest ``name``: Apollo's
    persisted query manifest (JSON), else the whole text as one GraphQL document.
    ManifestError names the first problem, ``source`` included."""
    if text.lstrip().startswith("{"):
        return _read_apollo_manifest(text, source=source, name=name)
    try:
        return [Registration(document_hash(text), text, operation_names(text), name[:200])]
    except ManifestError as error:
        raise ManifestError(f"{source}: {error}") from None


def _read_apollo_manifest(text: str, *, source: str, name: str) -> list[Registration]:
    try:
        manifest = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise ManifestError(f"{source}: not JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != APOLLO_MANIFEST_FORMAT:
        raise ManifestError(f"{source}: not an {APOLLO_MANIFEST_FORMAT} (version 1)")
    if manifest.get("version") != 1 or not isinstance(manifest.get("operations"), list):
        raise ManifestError(f"{source}: only version 1 manifests with operations are read")
    registrations = []
    for index, operation in enumerate(manifest["operations"]):
        where = f"{source}: operations[{index}]"
        body = operation.get("body") if isinstance(operation, dict) else None
        if not isinstance(body, str):
            raise ManifestError(f"{where} has no body")
        digest = document_hash(body)
        if operation.get("id") != digest:
            raise ManifestError(f"{where}: id is not the SHA-256 of its body ({digest})")
        try:
            registrations.append(Registration(digest, body, operation_names(body), name[:200]))
        except ManifestError as error:
            raise ManifestError(f"{where} {error}") from None
    return registrations


async def register(
    *,
    session_factory: SessionFactory,
    registrations: Sequence[Registration],
    validate: Callable[[str], list[str]],
) -> int:
    """Register every document or none; how many were new (one registered before keeps its
    first manifest). ManifestError when one fails ``validate`` (its messages: the document
    would never run against this schema)."""
    for registration in registrations:
        if problems := validate(registration.document):
            names = ", ".join(registration.operation_names)
            raise ManifestError(f"{names} ({registration.sha256[:12]}): {'; '.join(problems)}")
    if not registrations:
        return 0
    async with session_factory() as session, session.begin():
        added = await session.scalars(
            insert(TrustedDocument)
            .values(
                [
                    {
                        "sha256": r.sha256,
                        "document": r.document,
                        "operation_names": list(r.operation_names),
                        "manifest": r.manifest,
                    }
                    for r in {r.sha256: r for r in registrations}.values()
                ]
            )
            .on_conflict_do_nothing(index_elements=["sha256"])
            .returning(TrustedDocument.sha256)
        )
        return len(added.all())


async def registered(*, session_factory: SessionFactory) -> list[TrustedDocument]:
    async with session_factory() as session:
        query = select(TrustedDocument).order_by(
            TrustedDocument.registered_at, TrustedDocument.sha256
        )
        return list(await session.scalars(query))


async def remove(*, session_factory: SessionFactory, digests: Sequence[str]) -> int:
    """Unregister documents by hash; how many there were."""
    async with session_factory() as session, session.begin():
        removed = await session.scalars(
            delete(TrustedDocument)
            .where(TrustedDocument.sha256.in_(list(digests)))
            .returning(TrustedDocument.sha256)
        )
        return len(removed.all())


@dataclass(frozen=True, slots=True)
class Policy:
    """What applies to one caller: must it run registered documents only, and is running an
    unregistered one worth a log line (the ``log`` rollout step)."""

    restricted: bool
    log_misses: bool

    @classmethod
    def of(
        cls,
        *,
        role: Role | None,
        client: str | None,
        default: TrustMode,
        per_client: Mapping[str, TrustMode],
    ) -> Policy:
        """Partner tokens are always restricted; anyone else as their client's mode says
        (the client's own when configured, else the default)."""
        mode = per_client.get(client, default) if client else default
        return cls(
            restricted=role is Role.PARTNER or mode is TrustMode.ENFORCE,
            log_misses=mode is TrustMode.LOG,
        )


class TrustedDocuments:
    """Registered documents by hash, read through a small per-process cache."""

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session_factory = session_factory
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: OrderedDict[str, tuple[str | None, float]] = OrderedDict()

    async def find(self, digest: str) -> str | None:
        """The registered document with SHA-256 ``digest``, or None."""
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            self._cache.move_to_end(digest)
            return cached[0]
        document = await self._session_factory.reading(
            lambda session: session.scalar(
                select(TrustedDocument.document).where(TrustedDocument.sha256 == digest)
            )
        )
        self._cache[digest] = (document, now + self._cache_seconds)
        self._cache.move_to_end(digest)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return document
