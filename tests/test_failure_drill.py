"""The failure drill's building blocks on servers of its own: a Redis and a PostgreSQL that are
killed and restarted keep their address and what they had made durable. (The whole drill takes
minutes: ``scripts/failure_drill.py``.)"""

import asyncio
import time

import asyncpg
import redis

from scripts.failure_drill import OwnPostgres, Tally, slots
from tests.servers import valkey


def test_own_redis_comes_back_on_its_port_with_its_append_only_file(tmp_path):
    # given the drill's Redis: an append-only file, as the compose file's queue Redis
    with valkey(tmp_path, appendonly="yes") as server:
        with redis.Redis.from_url(server.url) as client:
            client.set("queued-job", "payload")
        time.sleep(1.2)  # appendfsync everysec
        # when
        server.kill()
        refused = _refused(server.url)
        server.start()
        # then
        assert refused
        with redis.Redis.from_url(server.url) as client:
            assert client.get("queued-job") == b"payload"


def test_own_postgres_recovers_committed_rows_after_an_immediate_stop(tmp_path):
    # given
    server = OwnPostgres(tmp_path / "postgres")
    dsn = "postgresql://" + server.admin_url.split("://", 1)[1]
    try:
        asyncio.run(_execute(dsn, "CREATE TABLE drill (n int); INSERT INTO drill VALUES (7)"))
        # when
        server.kill()
        refused = _pg_refused(dsn)
        server.start()
        # then
        assert refused
        assert asyncio.run(_fetch(dsn, "SELECT n FROM drill")) == 7
    finally:
        server.stop()


def test_every_mark_of_a_teacher_gets_its_own_slot():
    from datetime import date

    taken = list(slots(date(2026, 11, 30)))
    assert len(taken) == len(set(taken)) == 30 * 6
    assert taken[0] == (date(2026, 11, 30), 1)


def test_tally_counts_failures_per_phase():
    tally = Tally(phase="redis-down")
    tally.record("studentDashboard", None)
    tally.record("studentDashboard", "HTTP 500")
    tally.phase = "after"
    tally.record("studentDashboard", None)
    assert tally.counts[("redis-down", "studentDashboard")] == 2
    assert tally.failures[("redis-down", "studentDashboard")] == 1
    assert tally.first_failure == {("redis-down", "studentDashboard"): "HTTP 500"}
    assert tally.failures[("after", "studentDashboard")] == 0


def _refused(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            client.ping()
    except redis.ConnectionError:
        return True
    return False


def _pg_refused(dsn: str) -> bool:
    try:
        asyncio.run(_fetch(dsn, "SELECT 1"))
    except (OSError, asyncpg.PostgresError):
        return True
    return False


async def _execute(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _fetch(dsn: str, query: str) -> object:
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()
