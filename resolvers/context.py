"""The one request context: resources from the app's lifespan, the viewer, loaders, request id."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

import strawberry
from arq.connections import ArqRedis
from starlette.responses import Response
from starlette.websockets import WebSocket

from resolvers.freshness import FreshnessReport
from resolvers.loaders import Loaders, load_existing
from resolvers.rate_limits import RateLimitReport
from services.access import Access
from services.audit import Origin
from services.auth import TokenVerifier, Viewer
from services.cached_reads import Reader
from services.credentials import ensure_current
from services.downloads import Links
from services.live import Hub
from services.models import Tenant
from services.platform import recording
from services.platform.cache import Cache
from services.platform.db import SessionFactory
from services.platform.errors import Invalid, ServiceError, Unauthenticated
from services.platform.persisted_queries import PersistedQueries
from services.platform.resources import ResourceMonitor
from services.platform.settings import Settings
from services.platform.storage import ObjectStore
from services.presence import Lease, Presence
from services.rate_limits import RateLimited, RateLimiter, record_refusal
from services.response_cache import ResponseCache
from services.trusted_documents import Policy, TrustedDocuments


@dataclass
class CostBudget:
    """The estimated cost the operations of one request may spend together."""

    limit: int
    spent: int = 0

    def spend(self, cost: int) -> bool:
        """Whether ``cost`` more still fits (it is spent either way)."""
        self.spent += cost
        return self.spent <= self.limit


@dataclass
class Context:
    settings: Settings
    session_factory: SessionFactory
    redis: ArqRedis
    cache: Cache
    hub: Hub
    presence: Presence
    store: ObjectStore
    links: Links
    limiter: RateLimiter
    persisted: PersistedQueries
    trusted: TrustedDocuments
    resources: ResourceMonitor
    tokens: TokenVerifier
    request_id: str
    # Whole answers of cacheable queries (graph/response_cache.py); None when turned off.
    responses: ResponseCache | None = None
    response: Response | WebSocket | None = None
    # Where the request came from (for the audit log) and this API's address as its client
    # sees it (ROLLCALL_PUBLIC_URL, else the request's), for links the API serves itself.
    origin: Origin = field(default_factory=Origin)
    public_url: str = "/"
    # The client's own name for itself (Apollo's header): picks its trusted-documents mode.
    client_name: str | None = None
    viewer_or_error: Viewer | ServiceError | None = None
    freshness: FreshnessReport = field(default_factory=FreshnessReport)
    rate_limits: RateLimitReport = field(default_factory=RateLimitReport)
    # A live connection's connection_init payload (strawberry sets it) and its lease.
    connection_params: dict[str, object] | None = None
    lease: Lease | None = None
    viewer_confirmed: bool = False
    # What an HTTP request's operations may cost together (a batch's); None on a websocket,
    # whose operations are limited one by one and by their number.
    cost_budget: CostBudget | None = None

    @property
    def viewer(self) -> Viewer:
        """The authenticated caller; UNAUTHENTICATED when the token is missing or bad."""
        if isinstance(self.viewer_or_error, Viewer):
            return self.viewer_or_error
        if isinstance(self.viewer_or_error, ServiceError):
            raise self.viewer_or_error
        raise Unauthenticated("Log in first: send Authorization: Bearer <token>.")

    def act_as(self, viewer: Viewer) -> None:
        """From now on this request runs as ``viewer``, whose credentials were just proven (a
        login): the login's answer may then read what the new token may read."""
        self.viewer_or_error = viewer
        self.viewer_confirmed = True
        for derived in ("access", "loaders", "reads"):
            self.__dict__.pop(derived, None)

    async def confirm_viewer(self) -> None:
        """Check, once, that the token still speaks for its account (not issued before a
        password change, account not disabled); when not, ``viewer`` says why."""
        if self.viewer_confirmed or not isinstance(self.viewer_or_error, Viewer):
            return
        try:
            await ensure_current(
                self.viewer_or_error, cache=self.cache, session_factory=self.session_factory
            )
        except ServiceError as error:
            self.viewer_or_error = error
        self.viewer_confirmed = True

    @property
    def trust_policy(self) -> Policy:
        """Must this caller run registered documents only (partners always)?"""
        viewer = self.viewer_or_error
        return Policy.of(
            role=viewer.role if isinstance(viewer, Viewer) else None,
            client=self.client_name,
            default=self.settings.trusted_documents,
            per_client=self.settings.trusted_documents_clients,
        )

    @cached_property
    def access(self) -> Access:
        return Access(viewer=self.viewer, session_factory=self.session_factory, cache=self.cache)

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders.create(self.session_factory, self.viewer.tenant_id)

    @cached_property
    def reads(self) -> Reader:
        """Dashboards, statistics and rankings through the cache, with the viewer's rights."""
        return Reader(
            cache=self.cache,
            session_factory=self.session_factory,
            access=self.access,
            tenant=self.tenant,
            clock=self.now,
        )

    async def limit(self, name: str) -> None:
        """Count one ``name`` operation of the viewer; RATE_LIMIT_EXCEEDED (audited) when over."""
        viewer = self.viewer
        if (running := recording.current()) is not None:
            running.limit(name)  # a cached answer counts again each time it is served
        try:
            quota = await self.limiter.hit(name, str(viewer.tenant_id), str(viewer.user_id))
        except RateLimited as refused:
            self.rate_limits.note(refused.quota)
            await record_refusal(
                self.session_factory,
                tenant_id=viewer.tenant_id,
                user_id=viewer.user_id,
                refused=refused,
                origin=self.origin,
            )
            raise
        if quota is not None:
            self.rate_limits.note(quota)

    async def count_limits(self, names: Sequence[str]) -> bool:
        """Count one operation against each of ``names``, reporting where the viewer stands;
        False, reporting nothing, when one refuses: the operation then runs, and is refused
        and audited as always (the limits counted before that one count twice)."""
        viewer = self.viewer
        quotas = []
        for name in names:
            allowed, quota = await self.limiter.try_hit(
                name, str(viewer.tenant_id), str(viewer.user_id)
            )
            if not allowed:
                return False
            if quota is not None:
                quotas.append(quota)
        for quota in quotas:
            self.rate_limits.note(quota)
        return True

    @contextlib.contextmanager
    def noting_refusal(self) -> Iterator[None]:
        """A limit that refuses the block's operation is reported in the response's headers
        and extensions, as every limit the viewer meets is."""
        try:
            yield
        except RateLimited as refused:
            self.rate_limits.note(refused.quota)
            raise

    async def tenant(self) -> Tenant:
        return await load_existing(self.loaders.tenants, self.viewer.tenant_id, "tenant")

    def now(self) -> datetime:
        return datetime.now(UTC)


Info = strawberry.Info[Context, None]


def parse_id(value: str, field_name: str) -> uuid.UUID:
    """A client-supplied ID, or VALIDATION_ERROR naming the argument."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError) as error:
        raise Invalid(field_name, f"{field_name} is not a valid ID.") from error
