"""Governance benchmark: what rate limits, persisted queries and trusted documents cost a request,
and how fast abusive documents are refused.

Creates a throwaway database (``foundation.scratch_database``), seeds one school (one class of
30 students, 10 days), registers one trusted document, then times sequential GraphQL requests
through httpx's ASGI transport against two apps on the same database and Redis: rate limits off
(as the other benchmarks run) and on (the design's limits, raised so that nothing is refused).

    .venv/bin/python -m benchmarks.governance [--iterations 500] [--keep]

Rows, p50/p95/mean in ms:
- ``me`` sent whole by an admin (the baseline), by hash only (APQ, a Redis read), over GET;
- ``me`` by a partner token: a registered document by hash, sent whole, and an unregistered one
  refused (PERSISTED_QUERY_NOT_IN_LIST);
- ``studentDashboard`` with limits off and on (one moving-window hit and one stats read in Redis);
- refusals before execution: 500 aliases, depth 30, ``first: 100000``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402
from sqlalchemy import select  # noqa: E402

from benchmarks.foundation import percentile, scratch_database  # noqa: E402
from graph.app import create_app  # noqa: E402
from services.auth import Viewer, hash_password, issue_token  # noqa: E402
from services.bulk_seed import seed_bulk  # noqa: E402
from services.models import Role, Student, User  # noqa: E402
from services.platform.db import create_engine, create_session_factory  # noqa: E402
from services.platform.settings import RateLimit, Settings  # noqa: E402
from services.trusted_documents import read_manifest, register  # noqa: E402

ME = "query Me { me { id role } }"
DASHBOARD = "query Dashboard($id: ID!) { studentDashboard(studentId: $id) { attendanceRate } }"
UNREGISTERED = "query Other { me { id email } }"
ALIASES = "{ " + " ".join(f"a{n}: me {{ id }}" for n in range(500)) + " }"


def nested(levels: int) -> str:
    """A classroom's students' classroom's students … ``levels`` times: depth 1 + 4 × levels + 1."""
    inner = "id"
    for _ in range(levels):
        inner = f"students {{ edges {{ node {{ classroom {{ {inner} }} }} }} }}"
    return f"query Deep($id: ID!) {{ classroom(id: $id) {{ {inner} }} }}"


DEEP = nested(7)
HUGE_PAGE = "query Huge($id: ID!) { classRankings(classroomId: $id, first: 100000) { totalCount } }"
# High enough that a run is never refused: the cost measured is the counting.
UNREFUSED = {name: RateLimit(10_000_000, 60) for name in ("dashboard", "export", "upload")}

Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def digest(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def persisted(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest(document)}}


@dataclasses.dataclass
class Row:
    name: str
    expect: str  # "data" or an error code
    samples: list[float] = dataclasses.field(default_factory=list)
    wrong: int = 0

    def line(self) -> str:
        s = self.samples
        return (
            f"{self.name:<46} {len(s):>5} {percentile(s, 50):>8.2f} {percentile(s, 95):>8.2f} "
            f"{sum(s) / len(s):>8.2f}" + (f"  UNEXPECTED={self.wrong}" if self.wrong else "")
        )


def outcome(response: httpx.Response) -> str:
    body = response.json()
    errors = body.get("errors") if isinstance(body, dict) else None
    return str(errors[0]["extensions"]["code"]) if errors else "data"


async def measure(
    row: Row, client: httpx.AsyncClient, call: Call, *, warmup: int, iterations: int
) -> Row:
    for _ in range(warmup):
        await call(client)
    for _ in range(iterations):
        started = time.perf_counter()
        response = await call(client)
        row.samples.append((time.perf_counter() - started) * 1000)
        row.wrong += outcome(response) != row.expect
    return row


def post(body: dict[str, Any], token: str) -> Call:
    headers = {"authorization": f"Bearer {token}"}
    return lambda client: client.post("/graphql", json=body, headers=headers)


def get(params: dict[str, str], token: str) -> Call:
    headers = {"authorization": f"Bearer {token}"}
    return lambda client: client.get("/graphql", params=params, headers=headers)


async def prepare(settings: Settings) -> tuple[str, str, str, str]:
    """Seed a school, a partner account and a registered document; (admin token, partner
    token, a student id, the classroom id)."""
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
            prefix="bench-governance",
        )
        async with session_factory() as session, session.begin():
            admin = await session.scalar(
                select(User).where(User.tenant_id == tenant_id, User.role == Role.ADMIN)
            )
            student = await session.scalar(select(Student).where(Student.tenant_id == tenant_id))
            partner = User(
                tenant_id=tenant_id,
                email="partner@bench.test",
                password_hash=hash_password("unused partner password"),
                role=Role.PARTNER,
            )
            session.add(partner)
        assert admin is not None and student is not None
        await register(
            session_factory=session_factory,
            registrations=read_manifest(ME, source="bench", name="bench"),
            validate=lambda document: [],
        )
    finally:
        await engine.dispose()
    now = datetime.now(UTC)

    def token(user: User) -> str:
        viewer = Viewer(user_id=user.id, tenant_id=tenant_id, role=user.role)
        return issue_token(viewer, secret=settings.jwt_secret, ttl_seconds=3600, now=now)

    return token(admin), token(partner), str(student.id), str(student.classroom_id)


async def benchmark(settings: Settings, args: argparse.Namespace) -> list[Row]:
    admin, partner, student, classroom = await prepare(settings)
    limited = dataclasses.replace(settings, rate_limits_enabled=True, rate_limits=UNREFUSED)
    runs = {"warmup": args.warmup, "iterations": args.iterations}
    rows: list[Row] = []
    for app_settings, plan in (
        (
            settings,
            [
                (Row("me, admin, sent whole (baseline)", "data"), post({"query": ME}, admin)),
                (
                    Row("me, admin, APQ hash only (POST)", "data"),
                    post({"extensions": persisted(ME)}, admin),
                ),
                (
                    Row("me, admin, APQ hash only (GET)", "data"),
                    get({"extensions": orjson.dumps(persisted(ME)).decode()}, admin),
                ),
                (
                    Row("me, partner, trusted document by hash", "data"),
                    post({"extensions": persisted(ME)}, partner),
                ),
                (
                    Row("me, partner, trusted document sent whole", "data"),
                    post({"query": ME}, partner),
                ),
                (
                    Row("partner, unregistered document (refused)", "PERSISTED_QUERY_NOT_IN_LIST"),
                    post({"query": UNREGISTERED}, partner),
                ),
                (
                    Row("studentDashboard, rate limits off", "data"),
                    post({"query": DASHBOARD, "variables": {"id": student}}, admin),
                ),
                (
                    Row("500 aliases (refused)", "GRAPHQL_VALIDATION_FAILED"),
                    post({"query": ALIASES}, admin),
                ),
                (
                    Row("depth 30 (refused)", "GRAPHQL_VALIDATION_FAILED"),
                    post({"query": DEEP, "variables": {"id": classroom}}, admin),
                ),
                (
                    Row("first: 100000 (refused)", "GRAPHQL_VALIDATION_FAILED"),
                    post({"query": HUGE_PAGE, "variables": {"id": classroom}}, admin),
                ),
            ],
        ),
        (
            limited,
            [
                (
                    Row("studentDashboard, rate limits on", "data"),
                    post({"query": DASHBOARD, "variables": {"id": student}}, admin),
                )
            ],
        ),
    ):
        async with (
            LifespanManager(create_app(app_settings)) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://bench"
            ) as client,
        ):
            # APQ's first step: the document with its hash, kept for the hash-only rows
            await post({"query": ME, "extensions": persisted(ME)}, admin)(client)
            for row, call in plan:
                rows.append(await measure(row, client, call, **runs))
    return rows


def table(rows: Sequence[Row]) -> str:
    header = f"{'request':<46} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}"
    baseline = percentile(rows[0].samples, 50)
    off = next(r for r in rows if r.name.endswith("limits off"))
    on = next(r for r in rows if r.name.endswith("limits on"))
    lines = [header, "-" * len(header), *(row.line() for row in rows), ""]
    for row in rows[1:5]:
        lines.append(
            f"{row.name}: {percentile(row.samples, 50) - baseline:+.2f} ms p50 vs baseline"
        )
    lines.append(
        "rate limits on a dashboard read: "
        f"{percentile(on.samples, 50) - percentile(off.samples, 50):+.2f} ms p50"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with scratch_database(
        "rollcall_bench_governance", redis_default="redis://127.0.0.1:6379/11", keep=args.keep
    ) as scratch:
        rows = asyncio.run(benchmark(scratch.settings, args))
    print(table(rows))
    return 1 if any(row.wrong for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
