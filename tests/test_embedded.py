"""With nothing configured, development starts embedded PostgreSQL and Valkey, and stops them."""

from __future__ import annotations

import asyncio

import redis
from sqlalchemy import text

from rollcall.cli import resolved
from services.db import create_engine, migrate
from services.settings import Settings


def test_embedded_servers_start_migrate_and_answer(tmp_path):
    settings = Settings.from_env({"ROLLCALL_DATA_DIR": str(tmp_path)})
    with resolved(settings) as ready:
        assert ready.database_url and ready.database_url.startswith("postgresql+asyncpg://")
        assert ready.redis_url and ready.redis_url.startswith("redis://")
        migrate(ready.database_url)

        async def tables() -> int:
            engine = create_engine(ready.database_url, pool_max=1)
            async with engine.connect() as connection:
                count = await connection.scalar(
                    text("SELECT count(*) FROM pg_matviews WHERE matviewname = 'class_statistics'")
                )
            await engine.dispose()
            return count

        assert asyncio.run(tables()) == 1
        with redis.Redis.from_url(ready.redis_url) as client:
            assert client.ping()
        redis_url = ready.redis_url
    # the Valkey server stops with the block
    with redis.Redis.from_url(redis_url, socket_connect_timeout=1) as client:
        try:
            client.ping()
            stopped = False
        except redis.ConnectionError:
            stopped = True
    assert stopped
