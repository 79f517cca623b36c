"""What rate limits, persisted queries and trusted documents cost a request, and how fast abusive
documents are refused (see benchmarks/README.md)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson

from benchmarks import harness
from benchmarks.harness import Samples
from graph.app import create_app
from services.auth import hash_password
from services.models import Role, User
from services.platform.settings import RateLimit, Settings
from services.trusted_documents import read_manifest, register

ME = "query Me { me { id role } }"
DASHBOARD = "query Dashboard($id: ID!) { studentDashboard(studentId: $id) { attendanceRate } }"
UNREGISTERED = "query Other { me { id email } }"
ALIASES = "{ " + " ".join(f"a{n}: me {{ id }}" for n in range(500)) + " }"
# A classroom's students' classroom's students … 7 times: depth 1 + 4 × 7 + 1 = 30.
NESTED = "students { edges { node { classroom { " * 7 + "id" + " } } } }" * 7
DEEP = f"query Deep($id: ID!) {{ classroom(id: $id) {{ {NESTED} }} }}"
HUGE_PAGE = "query Huge($id: ID!) { classRankings(classroomId: $id, first: 100000) { totalCount } }"
APQ = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(ME.encode()).hexdigest()}}
APQ_GET = orjson.dumps(APQ).decode()
# High enough that a run is never refused: the cost measured is the counting.
UNREFUSED = {name: RateLimit(10_000_000, 60) for name in ("dashboard", "export", "upload")}
REFUSED, UNLISTED = "GRAPHQL_VALIDATION_FAILED", "PERSISTED_QUERY_NOT_IN_LIST"

Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def send(token: str, method: str = "POST", **body: Any) -> Send:
    """``body`` as JSON, or for a GET as query parameters."""
    headers = {"authorization": f"Bearer {token}"}
    if method == "GET":
        return lambda client: client.get("/graphql", params=body, headers=headers)
    return lambda client: client.post("/graphql", json=body, headers=headers)


async def prepare(settings: Settings) -> tuple[str, str, str, str]:
    """A school, a partner account and a registered document; (admin token, partner token, a
    student id, the classroom id)."""
    async with harness.database_sessions(settings) as sessions:
        admin, student = await harness.bulk_class(
            sessions, prefix="bench-governance", students=30, days=10
        )
        partner = User(
            tenant_id=admin.tenant_id,
            email="partner@bench.test",
            password_hash=hash_password("unused partner password"),
            role=Role.PARTNER,
        )
        async with sessions() as session, session.begin():
            session.add(partner)
        await register(
            session_factory=sessions,
            registrations=read_manifest(ME, source="bench", name="bench"),
            validate=lambda document: [],
        )
    tokens = harness.token_for(settings, admin), harness.token_for(settings, partner)
    return *tokens, str(student.id), str(student.classroom_id)


async def measure(
    client: httpx.AsyncClient, expect: str, request: Send, runs: dict[str, int]
) -> Samples:
    async def call(_: int) -> tuple[float, str | None]:
        started = time.perf_counter()
        response = await request(client)
        elapsed = (time.perf_counter() - started) * 1000
        errors = response.json().get("errors")
        got = errors[0]["extensions"]["code"] if errors else "data"
        return elapsed, None if got == expect else f"{got}, not {expect}"

    return await harness.run_sequential(Samples(), call, **runs)


async def benchmark(settings: Settings, runs: dict[str, int]) -> dict[str, Samples]:
    admin, partner, student, classroom = await prepare(settings)
    dashboard = send(admin, query=DASHBOARD, variables={"id": student})
    on_class = {"variables": {"id": classroom}}
    unlimited = [  # (request, the expected outcome, how it is sent)
        ("me, admin, sent whole (baseline)", "data", send(admin, query=ME)),
        ("me, admin, APQ hash only (POST)", "data", send(admin, extensions=APQ)),
        ("me, admin, APQ hash only (GET)", "data", send(admin, "GET", extensions=APQ_GET)),
        ("me, partner, trusted document by hash", "data", send(partner, extensions=APQ)),
        ("me, partner, trusted document sent whole", "data", send(partner, query=ME)),
        ("partner, unregistered document (refused)", UNLISTED, send(partner, query=UNREGISTERED)),
        ("studentDashboard, rate limits off", "data", dashboard),
        ("500 aliases (refused)", REFUSED, send(admin, query=ALIASES)),
        ("depth 30 (refused)", REFUSED, send(admin, query=DEEP, **on_class)),
        ("first: 100000 (refused)", REFUSED, send(admin, query=HUGE_PAGE, **on_class)),
    ]
    limited = dataclasses.replace(settings, rate_limits_enabled=True, rate_limits=UNREFUSED)
    results: dict[str, Samples] = {}
    for app_settings, plan in (
        (settings, unlimited),
        (limited, [("studentDashboard, rate limits on", "data", dashboard)]),
    ):
        async with harness.in_process(create_app(app_settings)) as graphql:
            # APQ's first step: the document with its hash, kept for the hash-only rows
            await send(admin, query=ME, extensions=APQ)(graphql.client)
            for name, expect, request in plan:
                results[name] = await measure(graphql.client, expect, request, runs)
    return results


def main() -> int:
    arguments = harness.parser("governance", __doc__.splitlines()[0], strict=False)
    arguments.add_argument("--iterations", type=int, default=500)
    arguments.add_argument("--warmup", type=int, default=50)
    args = arguments.parse_args()
    report = harness.Report("governance", as_json=args.json)
    with harness.scratch_database("governance", redis_db=11, keep=args.keep) as db:
        # asyncio's own loop, not uvloop: the app runs on it too, as the recorded figures did
        counts = {"warmup": args.warmup, "iterations": args.iterations}
        runs = asyncio.run(benchmark(db.settings, counts))
    header = ["request", "n", "p50 ms", "p95 ms", "mean ms", "unexpected"]
    rows = [
        [name, len(s.latencies), s.p(50), s.p(95), s.mean, s.errors] for name, s in runs.items()
    ]
    report.table("requests", header, rows)
    report.say("", *(f"{name}: {s.first_error}" for name, s in runs.items() if s.errors))
    p50 = {name: samples.p(50) for name, samples in runs.items()}
    [baseline, *compared] = list(p50)[:5]
    for name in compared:
        diff = p50[name] - p50[baseline]
        report.figure(f"{name}, p50 vs baseline", diff, f"{name}: {diff:+.2f} ms p50 vs baseline")
    diff = p50["studentDashboard, rate limits on"] - p50["studentDashboard, rate limits off"]
    report.figure("rate limits, p50", diff, f"rate limits on a dashboard read: {diff:+.2f} ms p50")
    return report.finish(failed=any(samples.errors for samples in runs.values()))


if __name__ == "__main__":
    raise SystemExit(main())
