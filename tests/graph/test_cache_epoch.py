"""No cached value older than a committed write is served, whatever Redis forgets or brings
back: a restart from an older snapshot, a flush, a lagging replica promoted. Each test warms
the cache through the API, writes, takes Redis back to before the write, and reads again."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis.asyncio as aioredis

from services.models import AttendanceStatus
from services.platform.cache import tenant_key
from tests.factories import School, api_process, gql
from tests.graph.test_cached_reads import CLASS, DASHBOARD, MARK, mark_input
from tests.proxy import Proxy
from tests.servers import HOST, valkey

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
PENDING = 'rollcall-statistics; fwd=stale; detail="marks-pending"'
# The dashboard read from the database and the answer kept whole; then that answer served.
STORED = "rollcall; fwd=miss; stored, rollcall-response; fwd=miss; stored"
RESPONSE_HIT = "rollcall-response; hit"


async def read_rate(api: httpx.AsyncClient, school: School) -> tuple[float, str]:
    response = await api.post(
        "/graphql",
        json={"query": DASHBOARD, "variables": {"id": str(school.students[0].id)}},
        headers={"authorization": f"Bearer {school.token(school.admin)}"},
    )
    body = response.json()
    assert "errors" not in body, body
    # The response cache's seconds to live vary with the clock: left out.
    status = re.sub(r"; ttl=\d+", "", response.headers["cache-status"])
    return body["data"]["studentDashboard"]["attendanceRate"], status


async def warm(api: httpx.AsyncClient, school: School) -> None:
    """Read the dashboard until it is served from the cache (rate 100: one PRESENT mark)."""
    assert await read_rate(api, school) == (100.0, STORED)
    assert await read_rate(api, school) == (100.0, RESPONSE_HIT)


async def mark_absent(api: httpx.AsyncClient, school: School) -> None:
    body = (
        await api.post(
            "/graphql",
            json={
                "query": MARK,
                "variables": mark_input(
                    school,
                    school.students[:1],
                    AttendanceStatus.ABSENT,
                    day=datetime.now(UTC).date(),
                    period=1,
                ),
            },
            headers={"authorization": f"Bearer {school.token(school.teachers[0])}"},
        )
    ).json()
    assert "errors" not in body, body
    assert (await read_rate(api, school))[0] == 50.0


async def school_with_one_present_mark(factory) -> School:
    school = await factory.school(students=1)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    await factory.records(school, school.students[0], [(yesterday, 1, AttendanceStatus.PRESENT)])
    return school


def dashboard_key(school: School) -> str:
    return tenant_key(school.tenant.id, "dashboard", str(school.students[0].id))


async def test_a_redis_restarted_from_an_older_snapshot_shows_the_write(
    settings, factory, tmp_path
):
    # given one Redis for queue and cache, persisted, and a dashboard cached in it
    with valkey(tmp_path / "valkey") as server:
        on_it = dataclasses.replace(settings, redis_url=server.url, cache_redis_url=None)
        school = await school_with_one_present_mark(factory)
        async with api_process(on_it) as api:
            await warm(api, school)
            snapshot = server.snapshot()
            # when a mark is written, and Redis dies and comes back from the older snapshot
            await mark_absent(api, school)
            server.restart_from(snapshot)
            async with aioredis.Redis.from_url(server.url) as restored:
                assert await restored.exists(dashboard_key(school)), "the old entry came back"
            # then the first read after the restart shows the mark, and the cache works again;
            # class aggregates say marks may be pending (that snapshot lacks the mark's marker)
            stored = STORED.replace(", ", f", {PENDING}, ")
            assert await read_rate(api, school) == (50.0, stored)
            assert await read_rate(api, school) == (50.0, f"{PENDING}, {RESPONSE_HIT}")
        # and so does an API process started after the restart (make demo, Ctrl-C, make demo)
        server.restart_from(snapshot)
        async with api_process(on_it) as fresh:
            assert (await read_rate(fresh, school))[0] == 50.0


async def test_a_flushed_redis_shows_the_write(settings, factory, tmp_path):
    with valkey(tmp_path / "valkey") as server:
        on_it = dataclasses.replace(settings, redis_url=server.url, cache_redis_url=None)
        school = await school_with_one_present_mark(factory)
        async with api_process(on_it) as api:
            await warm(api, school)
            await mark_absent(api, school)
            async with aioredis.Redis.from_url(server.url) as client:
                await client.flushall()
            assert await read_rate(api, school) == (50.0, STORED)
            assert await read_rate(api, school) == (50.0, RESPONSE_HIT)


async def in_sync(replica: aioredis.Redis, key: str) -> None:
    # The first full sync forks and loads a snapshot: seconds on a loaded 2-core machine.
    for _ in range(3000):
        info = await replica.info("replication")
        if info.get("master_link_status") == "up" and await replica.exists(key):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the replica never caught up: {info}")


async def test_a_lagging_replica_promoted_shows_the_write(settings, factory, tmp_path):
    # given the cache's Redis behind an address that can fail over to a replica
    with (
        valkey(tmp_path / "primary") as primary,
        valkey(tmp_path / "replica", replicaof=f"{HOST} {primary.port}") as replica,
    ):
        proxy = Proxy(HOST, primary.port)
        async with (
            proxy.running() as port,
            aioredis.Redis.from_url(replica.url) as replica_client,
        ):
            on_it = dataclasses.replace(settings, cache_redis_url=f"redis://{HOST}:{port}/0")
            school = await school_with_one_present_mark(factory)
            async with api_process(on_it) as api:
                await warm(api, school)
                await in_sync(replica_client, dashboard_key(school))
                # when the replica stops receiving, the mark is written to the primary only,
                # and the replica is promoted in its place
                await replica_client.replicaof("NO", "ONE")
                await mark_absent(api, school)
                proxy.fail_over(HOST, replica.port)
                assert await replica_client.exists(dashboard_key(school))
                # then the first read from the promoted replica shows the mark
                assert (await read_rate(api, school))[0] == 50.0
                assert await read_rate(api, school) == (50.0, f"{PENDING}, {RESPONSE_HIT}")


async def test_a_refresh_renews_class_aggregates_whose_pending_marker_redis_lost(
    client, factory, redis
):
    # given class statistics cached from a snapshot without a mark
    school = await school_with_one_present_mark(factory)
    await factory.refresh()
    variables = {"id": str(school.classrooms[0].id)}
    admin = school.token(school.admin)
    before = await gql(client, CLASS, variables, token=admin)
    assert before["data"]["classStatistics"]["averageAttendance"] == 100.0
    # and a mark whose pending marker the cache's Redis no longer has (lost with a snapshot)
    await mark_absent(client, school)
    lagging = await gql(client, CLASS, variables, token=admin)
    assert lagging["data"]["classStatistics"]["averageAttendance"] == 100.0
    await redis.delete(tenant_key(school.tenant.id, "statistics:pending"))
    # when the statistics refresh lands
    await factory.refresh()
    # then the class aggregates include the mark at once, not a TTL later
    after = await gql(client, CLASS, variables, token=admin)
    assert after["data"]["classStatistics"]["averageAttendance"] == 50.0
