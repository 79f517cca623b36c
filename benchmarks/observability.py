"""Observability benchmark: what access logs and metrics add to one request.

Creates a throwaway database (``foundation.scratch_database``), seeds one school (one class of
30 students, 10 days), then sends sequential ``studentDashboard`` requests (an L1 cache hit: the
cheapest GraphQL request there is, so the overhead shows most) through httpx's ASGI transport to
two apps on the same database and Redis, in alternating blocks:

- ``bare``: no access log middleware, no engine events, no memory sampler (the services' own
  counters stay: they are measured below);
- ``observed``: as served, the access line formatted as JSON and written to /dev/null.

Then the cost of each primitive on its own: a histogram observation, a labelled counter
increment, one access record formatted as JSON.

    .venv/bin/python -m benchmarks.observability [--iterations 2000] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
import timeit
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402
from sqlalchemy import select  # noqa: E402
from starlette.types import ASGIApp, Receive, Scope, Send  # noqa: E402

import graph.app  # noqa: E402
from benchmarks.foundation import percentile, scratch_database  # noqa: E402
from services.auth import Viewer, issue_token  # noqa: E402
from services.bulk_seed import seed_bulk  # noqa: E402
from services.models import Role, Student, User  # noqa: E402
from services.platform.db import create_engine, create_session_factory  # noqa: E402
from services.platform.logs import ACCESS_LOGGER, JsonFormatter, RequestContextFilter  # noqa: E402
from services.platform.settings import Settings  # noqa: E402
from services.platform.telemetry import GRAPHQL_ERRORS, HTTP_REQUEST_DURATION  # noqa: E402

DASHBOARD = "query Dashboard($id: ID!) { studentDashboard(studentId: $id) { attendanceRate } }"
BLOCK = 200


class Passthrough:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class NoTelemetry:
    def __init__(self, **options: Any) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def prepare(settings: Settings) -> tuple[str, str]:
    """Seed a school; (admin token, a student id)."""
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_max=4)
    session_factory = create_session_factory(engine)
    try:
        [tenant_id] = await seed_bulk(
            session_factory=session_factory,
            today=datetime.now(UTC).date(),
            schools=1,
            classes=1,
            students=30,
            days=10,
            prefix="bench-observability",
        )
        async with session_factory() as session:
            admin = await session.scalar(
                select(User).where(User.tenant_id == tenant_id, User.role == Role.ADMIN)
            )
            student = await session.scalar(select(Student).where(Student.tenant_id == tenant_id))
    finally:
        await engine.dispose()
    assert admin is not None and student is not None
    viewer = Viewer(user_id=admin.id, tenant_id=tenant_id, role=admin.role)
    token = issue_token(viewer, secret=settings.jwt_secret, ttl_seconds=3600, now=datetime.now(UTC))
    return token, str(student.id)


@contextlib.asynccontextmanager
async def client(settings: Settings, *, observed: bool) -> AsyncIterator[httpx.AsyncClient]:
    middleware, telemetry = graph.app.AccessLogMiddleware, graph.app.Telemetry
    if not observed:
        graph.app.AccessLogMiddleware, graph.app.Telemetry = Passthrough, NoTelemetry  # type: ignore[misc, assignment]
    try:
        app = graph.app.create_app(settings)
    finally:
        graph.app.AccessLogMiddleware, graph.app.Telemetry = middleware, telemetry  # type: ignore[misc]
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://bench"
        ) as http,
    ):
        yield http


def production_logging() -> None:
    """Access lines formatted as JSON, written where they cost a write and nothing else."""
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


async def run(settings: Settings, iterations: int, warmup: int) -> None:
    token, student = await prepare(settings)
    production_logging()
    body = {"query": DASHBOARD, "variables": {"id": student}}
    headers = {"authorization": f"Bearer {token}"}
    samples: dict[str, list[float]] = {"bare": [], "observed": []}
    async with (
        client(settings, observed=False) as bare,
        client(settings, observed=True) as observed,
    ):
        clients = {"bare": bare, "observed": observed}
        for http in clients.values():
            for _ in range(warmup):
                assert "data" in (await http.post("/graphql", json=body, headers=headers)).json()
        for block in range(0, iterations, BLOCK):
            for name, http in clients.items():
                for _ in range(min(BLOCK, iterations - block)):
                    started = time.perf_counter()
                    response = await http.post("/graphql", json=body, headers=headers)
                    samples[name].append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200
    print(f"studentDashboard (L1 hit), {iterations} sequential requests each, in-process:")
    for name, values in samples.items():
        print(
            f"  {name:<9} mean={sum(values) / len(values):.3f} ms "
            f"p50={percentile(values, 50):.3f} ms p95={percentile(values, 95):.3f} ms"
        )
    bare_values, observed_values = samples["bare"], samples["observed"]
    p50 = percentile(observed_values, 50) - percentile(bare_values, 50)
    mean = sum(observed_values) / len(observed_values) - sum(bare_values) / len(bare_values)
    print(f"  overhead  p50={p50 * 1000:.0f} µs mean={mean * 1000:.0f} µs")


def primitives(number: int = 100_000) -> None:
    histogram = HTTP_REQUEST_DURATION.labels("benchmark", "2xx")
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 1, "POST /graphql", (), None)
    record.request = {}
    record.fields = {
        "requestId": "req_0123456789abcdef",
        "tenantId": "00000000-0000-0000-0000-000000000001",
        "userId": "00000000-0000-0000-0000-000000000002",
        "operations": ["Dashboard"],
        "method": "POST",
        "path": "/graphql",
        "status": 200,
        "latencyMs": 1.23,
    }
    formatter = JsonFormatter()
    rows = {
        "histogram observe (labels resolved)": lambda: histogram.observe(0.001),
        "labelled counter inc": lambda: GRAPHQL_ERRORS.labels("BENCHMARK").inc(),
        "access record as JSON": lambda: formatter.format(record),
    }
    print(f"primitives, {number} calls each:")
    for name, call in rows.items():
        seconds = timeit.timeit(call, number=number)
        print(f"  {name:<38} {seconds / number * 1e6:.2f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    with scratch_database(
        "rollcall_bench_observability", redis_default="redis://127.0.0.1:6379/12", keep=args.keep
    ) as scratch:
        asyncio.run(run(scratch.settings, args.iterations, args.warmup))
    primitives()


if __name__ == "__main__":
    main()
