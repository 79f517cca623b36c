"""The Starlette application: its lifespan builds every shared resource and closes it after."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import TypedDict

from arq.connections import ArqRedis, create_pool
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from graph.edge.files import download
from graph.edge.health import health, queues, ready
from graph.edge.middleware import RequestIdMiddleware
from graph.edge.observability import AccessLogMiddleware, Telemetry, metrics
from graph.edge.page import page_routes
from graph.edge.view import GraphQLView
from graph.edge.websocket import Admissions
from graph.schema import create_schema
from services.auth import TokenVerifier
from services.cached_reads import create_cache
from services.downloads import Links
from services.live import Hub
from services.platform.cache import Cache
from services.platform.circuit import CircuitBreaker
from services.platform.db import (
    DatabaseUnavailable,
    RetryPolicy,
    SessionFactory,
    create_engine,
    create_session_factory,
    database_answers,
    database_breaker,
    warm,
)
from services.platform.persisted_queries import PersistedQueries
from services.platform.redis_urls import queue_settings
from services.platform.resources import ResourceMonitor, SystemUsage, Usage
from services.platform.settings import Settings, redact
from services.platform.storage import ObjectStore, StorageUnavailable, create_store
from services.presence import Presence
from services.rate_limits import RateLimiter
from services.response_cache import ResponseCache
from services.trusted_documents import TrustedDocuments

logger = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """A required dependency does not answer: the app refuses to start (fail fast)."""


class State(TypedDict):
    settings: Settings
    engine: AsyncEngine
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
    database_breaker: CircuitBreaker
    resources: ResourceMonitor
    tokens: TokenVerifier
    responses: ResponseCache | None


def create_app(
    settings: Settings,
    *,
    retry: RetryPolicy | None = None,
    usage: Callable[[], Usage] | None = None,
) -> Starlette:
    """The ASGI app for ``settings``; database and Redis URLs must already be resolved.
    ``retry`` (the database retry policy) and ``usage`` (the CPU and memory sampler) are
    there for tests: the issue's 1, 2, 4 s backoff and the machine's usage otherwise."""
    if settings.database_url is None or settings.redis_url is None:
        raise ValueError("create_app needs settings with database_url and redis_url")
    database_url, redis_url = settings.database_url, settings.redis_url

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        breaker = database_breaker(reset_seconds=settings.db_breaker_reset_seconds)
        engine = create_engine(
            database_url,
            pool_max=settings.db_pool_max,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            breaker=breaker,
            pooler=settings.database_pooler,
        )
        try:
            await database_answers(engine)
            await warm(engine, connections=settings.db_pool_min)
        except (OSError, SQLAlchemyError, DatabaseUnavailable) as error:
            await engine.dispose()
            reason = error.__cause__ if isinstance(error, DatabaseUnavailable) else error
            raise StartupError(
                f"PostgreSQL is unreachable ({redact(database_url)}): {reason}"
            ) from error
        try:
            redis = await create_pool(queue_settings(redis_url))
        except (OSError, RedisError) as error:
            await engine.dispose()
            raise StartupError(f"Redis is unreachable ({redact(redis_url)}): {error}") from error
        telemetry = Telemetry(engine=engine, settings=settings)
        session_factory = create_session_factory(
            engine, retry=retry, pooler=settings.database_pooler
        )
        resources = ResourceMonitor(
            cpu_percent=settings.degrade_cpu_percent,
            memory_percent=settings.degrade_memory_percent,
            sample=usage or SystemUsage(),
        )
        cache = create_cache(
            settings, session_factory=session_factory, constrained=lambda: resources.constrained
        )
        # Live connections share the cache's Redis client; the hub's SUBSCRIBE connection
        # comes from its pool too.
        hub = Hub(redis=cache.redis)
        # Rate windows live beside the cache: losing one to eviction only loosens a limit.
        limiter = RateLimiter(redis=cache.redis, limits=settings.rate_limit)
        presence = Presence(
            redis=cache.redis, per_user=settings.ws_connections_per_user, limiter=limiter
        )
        presence.start()
        store = create_store(settings.storage_url)
        try:
            await store.ensure_ready()
        except StorageUnavailable:
            # Not fatal: uploads answer STORAGE_UNAVAILABLE and /health/ready says degraded
            # until it answers; the bucket is made on the first upload that finds it missing.
            logger.warning("object storage is unavailable at start-up", exc_info=True)
        try:
            yield State(
                settings=settings,
                engine=engine,
                session_factory=session_factory,
                redis=redis,
                cache=cache,
                hub=hub,
                presence=presence,
                store=store,
                links=Links(secret=settings.jwt_secret),
                limiter=limiter,
                persisted=PersistedQueries(cache.redis),
                trusted=TrustedDocuments(session_factory=session_factory),
                database_breaker=breaker,
                resources=resources,
                tokens=TokenVerifier(secret=settings.jwt_secret),
                responses=(
                    ResponseCache(cache=cache, manifests=settings.cache_l1_size)
                    if settings.response_cache
                    else None
                ),
            )
        finally:
            await presence.aclose()
            await hub.aclose()
            await cache.aclose()
            await cache.redis.aclose()
            await redis.aclose()
            await engine.dispose()
            await telemetry.aclose()

    graphql = GraphQLView(
        create_schema(settings),
        graphql_ide="graphiql" if settings.graphiql else None,
        # graphql-transport-ws only: the legacy graphql-ws protocol is refused (4406), see
        # strawberry's advisory GHSA-vpwc-v33q-mq89.
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        # Uploads are CSRF-safe: graph/edge/bodies.py demands a preflight header first.
        multipart_uploads_enabled=True,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_seconds),
        admissions=Admissions(settings.ws_unauthenticated_per_address),
        max_subscriptions_per_connection=settings.ws_operations_per_connection,
    )
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/health", health),
            Route("/health/ready", ready),
            Route("/health/queues", queues),
            Route("/metrics", metrics),
            Route("/files/{key:path}", download, methods=["GET", "HEAD"]),
            *page_routes(),
        ],
        middleware=[Middleware(RequestIdMiddleware), Middleware(AccessLogMiddleware)],
        lifespan=lifespan,
    )
