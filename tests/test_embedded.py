"""With nothing configured, development starts embedded PostgreSQL and Valkey, and stops them."""

from __future__ import annotations

import asyncio
import signal
import subprocess

import pytest
import redis
from sqlalchemy import text

from rollcall.cli import resolved
from rollcall.processes import child_env, rollcall_command, running_server
from services.platform.db import create_engine, migrate
from services.platform.settings import Settings


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


def test_the_queue_valkey_keeps_its_data_across_a_restart_and_the_cache_valkey_does_not(tmp_path):
    # given the embedded servers of a development machine, with a job and a cache entry
    settings = Settings.from_env({"ROLLCALL_DATA_DIR": str(tmp_path)})
    with resolved(settings) as ready:
        assert ready.cache_redis_url and ready.cache_redis_url != ready.redis_url
        with (
            redis.Redis.from_url(ready.redis_url) as queue,
            redis.Redis.from_url(ready.cache_redis_url) as cache,
        ):
            # the queue is never evicted (it would drop jobs), the cache evicts and never saves
            assert queue.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
            assert queue.config_get("appendonly")["appendonly"] == "yes"
            assert cache.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
            assert cache.config_get("save")["save"] == ""
            assert cache.config_get("appendonly")["appendonly"] == "no"
            queue.set("job", "queued")
            cache.set("entry", "cached")
    # when the machine's servers stop (Ctrl-C) and start again
    with (
        resolved(settings) as again,
        redis.Redis.from_url(again.redis_url) as queue,
        redis.Redis.from_url(again.cache_redis_url) as cache,
    ):
        # then the job is still queued and the cache starts empty
        assert queue.get("job") == b"queued"
        assert cache.get("entry") is None


def test_a_configured_cache_redis_is_used_as_it_is(tmp_path):
    settings = Settings.from_env(
        {"ROLLCALL_DATA_DIR": str(tmp_path), "ROLLCALL_CACHE_REDIS_URL": "redis://cache:6379/0"}
    )
    with resolved(settings) as ready:
        assert ready.cache_redis_url == "redis://cache:6379/0"
        assert not (tmp_path / "valkey-cache").exists()


async def test_a_terminated_server_stops_the_servers_it_started(tmp_path):
    # given the API started with nothing configured: embedded PostgreSQL and Valkey
    env = child_env(ROLLCALL_DATA_DIR=str(tmp_path), ROLLCALL_DB_POOL_MIN="1")
    migrated = await asyncio.to_thread(
        subprocess.run, rollcall_command("migrate"), env=env, capture_output=True
    )
    assert migrated.returncode == 0, migrated.stderr.decode()
    async with running_server(env, stop_signal=signal.SIGTERM) as server:
        redis_url = (tmp_path / "valkey" / "url").read_text().strip()
        assert (tmp_path / "postgres" / "postmaster.pid").exists()
        # when it is sent SIGTERM (docker stop, systemd, a supervisor)
        code = await server.stop(signal.SIGTERM)
        log = server.log_tail()
    # then it shuts down gracefully and stops both servers on its way out
    assert code == 128 + signal.SIGTERM, log
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()
    with (
        redis.Redis.from_url(redis_url, socket_connect_timeout=1) as client,
        pytest.raises(redis.ConnectionError),
    ):
        client.ping()
