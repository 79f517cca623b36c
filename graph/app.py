"""The Starlette application: its lifespan builds every shared resource and closes it after."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypedDict

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from graph.middleware import RequestIdMiddleware
from graph.schema import schema
from graph.view import GraphQLView
from services.db import SessionFactory, create_engine, create_session_factory
from services.queue import queue_depths
from services.settings import Settings, redact

READY_TIMEOUT_SECONDS = 2.0


class StartupError(RuntimeError):
    """A required dependency does not answer: the app refuses to start (fail fast)."""


class State(TypedDict):
    settings: Settings
    engine: AsyncEngine
    session_factory: SessionFactory
    redis: ArqRedis


async def health(request: Request) -> JSONResponse:
    """Liveness: the process answers. No I/O."""
    return JSONResponse({"status": "ok"})


async def _probe(check: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(check, READY_TIMEOUT_SECONDS)
    except Exception:
        return "down"
    return "up"


async def ready(request: Request) -> JSONResponse:
    """Readiness: 200 when PostgreSQL and Redis answer, else 503, with each one's state."""
    state: Any = request.state

    async def database() -> None:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    database_state, redis_state = await asyncio.gather(
        _probe(database()), _probe(state.redis.ping())
    )
    checks = {"database": database_state, "redis": redis_state}
    healthy = all(value == "up" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status_code=200 if healthy else 503,
    )


async def queues(request: Request) -> JSONResponse:
    """Jobs waiting per queue."""
    state: Any = request.state
    try:
        depths = await asyncio.wait_for(queue_depths(state.redis), READY_TIMEOUT_SECONDS)
    except Exception:
        return JSONResponse({"status": "unavailable", "queues": {}}, status_code=503)
    return JSONResponse({"status": "ok", "queues": depths})


def create_app(settings: Settings) -> Starlette:
    """The ASGI app for ``settings``; database and Redis URLs must already be resolved."""
    if settings.database_url is None or settings.redis_url is None:
        raise ValueError("create_app needs settings with database_url and redis_url")
    database_url, redis_url = settings.database_url, settings.redis_url

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        engine = create_engine(
            database_url, pool_min=settings.db_pool_min, pool_max=settings.db_pool_max
        )
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (OSError, SQLAlchemyError) as error:
            await engine.dispose()
            raise StartupError(
                f"PostgreSQL is unreachable ({redact(database_url)}): {error}"
            ) from error
        try:
            redis = await create_pool(RedisSettings.from_dsn(redis_url))
        except (OSError, RedisError) as error:
            await engine.dispose()
            raise StartupError(f"Redis is unreachable ({redact(redis_url)}): {error}") from error
        try:
            yield State(
                settings=settings,
                engine=engine,
                session_factory=create_session_factory(engine),
                redis=redis,
            )
        finally:
            await redis.aclose()
            await engine.dispose()

    graphql = GraphQLView(schema, graphql_ide="graphiql" if settings.graphiql else None)
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/health", health),
            Route("/health/ready", ready),
            Route("/health/queues", queues),
        ],
        middleware=[Middleware(RequestIdMiddleware)],
        lifespan=lifespan,
    )
