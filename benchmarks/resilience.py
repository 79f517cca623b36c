"""Resilience benchmark: what a request costs while the database is away, how soon the API
answers again once it is back, and what sampling CPU and memory costs.

Creates a throwaway database (``foundation.scratch_database``), seeds one small school, and
runs one in-process API (httpx's ASGI transport) whose PostgreSQL is reached through a TCP
proxy (``tests/proxy.py``) that the script takes down and brings back. The retry policy is the
real one (1, 2, 4 s), the breaker probes after ``--reset`` seconds.

    .venv/bin/python -m benchmarks.resilience [--requests 200] [--reset 2] [--keep]

Prints, in ms: ``me`` with the database up (p50/p95); the first request after the database
vanished (it waits out the retries until the breaker opens); requests while the breaker is open
(p50/p95/max, and connections the proxy saw meanwhile: 0 means none was tried); the time from
the database's return to the first answer; one CPU and memory sample, and one ``constrained``
check between samples.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402
from sqlalchemy import select  # noqa: E402

from benchmarks.foundation import percentile, scratch_database  # noqa: E402
from graph.app import create_app  # noqa: E402
from services.auth import Viewer, issue_token  # noqa: E402
from services.bulk_seed import seed_bulk  # noqa: E402
from services.models import Role, User  # noqa: E402
from services.platform.db import create_engine, create_session_factory  # noqa: E402
from services.platform.resources import ResourceMonitor, SystemUsage  # noqa: E402
from services.platform.settings import Settings  # noqa: E402
from tests.proxy import Proxy, target_of, through  # noqa: E402

ME = {"query": "{ me { id role } }"}


async def admin_token(settings: Settings) -> str:
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_max=2)
    try:
        [tenant_id] = await seed_bulk(
            session_factory=create_session_factory(engine),
            today=datetime.now(UTC).date(),
            schools=1,
            classes=1,
            students=5,
            days=2,
            prefix="bench-resilience",
        )
        async with create_session_factory(engine)() as session:
            admin = await session.scalar(
                select(User).where(User.tenant_id == tenant_id, User.role == Role.ADMIN)
            )
    finally:
        await engine.dispose()
    assert admin is not None
    viewer = Viewer(user_id=admin.id, tenant_id=tenant_id, role=admin.role)
    return issue_token(viewer, secret=settings.jwt_secret, ttl_seconds=3600, now=datetime.now(UTC))


async def timed(http: httpx.AsyncClient, token: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = await http.post("/graphql", json=ME, headers={"authorization": f"Bearer {token}"})
    return (time.perf_counter() - started) * 1000, response.status_code


def line(name: str, samples: list[float]) -> str:
    return (
        f"{name:<44} n={len(samples):<5} p50={percentile(samples, 50):8.2f}"
        f" p95={percentile(samples, 95):8.2f} max={max(samples):8.2f}"
    )


async def benchmark(settings: Settings, args: argparse.Namespace) -> None:
    assert settings.database_url is not None
    token = await admin_token(settings)
    proxy = Proxy(*target_of(settings.database_url))
    async with proxy.running() as port:
        proxied = dataclasses.replace(
            settings,
            database_url=through(settings.database_url, port),
            db_breaker_reset_seconds=args.reset,
        )
        async with (
            LifespanManager(create_app(proxied)) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://bench"
            ) as http,
        ):
            up = [(await timed(http, token))[0] for _ in range(args.requests)]
            print(line("me, database up", up))
            proxy.down()
            first, status = await timed(http, token)
            print(f"{'first request, database gone':<44} {first:8.2f} ms (HTTP {status})")
            while (await http.get("/health/ready")).json()["database"]["breaker"] != "open":
                await timed(http, token)
            seen = proxy.connections
            open_samples = []
            for _ in range(args.requests):
                elapsed, status = await timed(http, token)
                assert status == 503, status
                open_samples.append(elapsed)
            print(line("me, breaker open (HTTP 503)", open_samples))
            print(f"{'connections tried while open':<44} {proxy.connections - seen}")
            proxy.up()
            back = time.perf_counter()
            answered = False
            while not answered:
                answered = (await timed(http, token))[1] == 200
                await asyncio.sleep(0 if answered else 0.05)
            recovered = (time.perf_counter() - back) * 1000
            name = f"database back -> first answer (reset {args.reset} s)"
            print(f"{name:<44} {recovered:8.2f} ms")
    usage = SystemUsage()
    started = time.perf_counter()
    for _ in range(100):
        usage()
    sample_us = (time.perf_counter() - started) / 100 * 1e6
    monitor = ResourceMonitor(cpu_percent=80, memory_percent=85, sample=usage)
    monitor.pressure()
    started = time.perf_counter()
    for _ in range(100_000):
        monitor.pressure()
    check_us = (time.perf_counter() - started) / 100_000 * 1e6
    print(f"{'one CPU and memory sample':<44} {sample_us:8.2f} µs")
    print(f"{'one constrained check between samples':<44} {check_us:8.3f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--reset", type=int, default=2, help="DB_BREAKER_RESET_SECONDS")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    with scratch_database(
        "rollcall_bench_resilience", redis_default="redis://127.0.0.1:6379/9", keep=args.keep
    ) as db:
        asyncio.run(benchmark(db.settings, args))


if __name__ == "__main__":
    main()
