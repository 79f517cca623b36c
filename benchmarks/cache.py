"""Throughput of cached reads against ``{ __typename }`` over HTTP, and against a peer: see
benchmarks/README.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import httpx

from benchmarks import harness
from benchmarks.harness import BenchmarkError, Cell, GraphQL, Report, Samples, ScratchDatabase
from benchmarks.load import DASHBOARD
from rollcall.processes import ServerProcess, free_port, node_packages
from services.seed import DEMO_SLUG

PEER = harness.ROOT / "benchmarks" / "peer"
TARGET_PEER_RATIO = 0.6
DEMO_STUDENTS = 40
TARGET_RATIO = 0.9
TARGET_TAIL = 2.0  # p99 at most this many times p50
MANY_CONNECTIONS = 500

TRIVIAL = "{ __typename }"
CLASS_PAGE = (
    "query ClassPage($id: ID!) { classStatistics(classroomId: $id) { classroomId "
    "totalStudents averageAttendance medianAttendance highestAttendance lowestAttendance "
    "studentsAtRisk lastCalculated } classRankings(classroomId: $id, first: 40) { totalCount "
    "edges { cursor node { studentId rank totalStudents percentile attendanceRate } } } }"
)
CLASSROOMS = "query Classes { classrooms { edges { node { id name } } } }"


@dataclass(frozen=True)
class Peer:
    """The peer server (benchmarks/peer/server.mjs), as the load generator needs it."""

    host: str
    port: int
    pid: int


@contextlib.asynccontextmanager
async def peer_server(report: Report) -> AsyncIterator[Peer | None]:
    """The Yoga peer on a free port until the block ends; None without Node.js (or when its
    packages cannot be installed)."""
    if (unusable := await node_packages(PEER)) is not None:
        report.say(f"the peer is not measured: {unusable}")
        yield None
        return
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        "node", "server.mjs", str(port), cwd=PEER, stdout=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.05)
        else:
            raise BenchmarkError("the peer did not listen within 5 s")
        yield Peer(host="127.0.0.1", port=port, pid=process.pid)
    finally:
        process.terminate()
        await process.wait()


@dataclass
class Result:
    name: str
    samples: Samples
    before: dict[str, int] | None
    after: dict[str, int] | None
    cpu: harness.CpuUse
    resident_mb: list[float]  # each server's, after the window

    def counter(self, name: str) -> int | None:
        if self.before is None or self.after is None or name not in self.after:
            return None
        return self.after[name] - self.before.get(name, 0)

    @property
    def lookups(self) -> int | None:
        parts = [self.counter(name) for name in ("hits", "misses", "bypassed")]
        return None if None in parts else sum(p for p in parts if p is not None)

    def cells(self) -> tuple[Cell, ...]:
        s, cpu, lookups, hits = self.samples, self.cpu, self.lookups, self.counter("hits")
        l1, l2 = self.counter("l1_hits"), self.counter("l2_hits")
        requests = len(s.latencies)
        return (
            self.name,
            requests,
            s.throughput,
            *(s.p(q) for q in (50, 95, 99)),
            s.max,
            s.errors,
            "n/a" if lookups is None or hits is None else hits / lookups * 100 if lookups else "-",
            "n/a" if l1 is None or l2 is None else f"{l1}/{l2}",
            "n/a" if lookups is None else lookups / requests if requests else "-",
            "n/a" if (misses := self.counter("misses")) is None else misses,
            cpu.server,
            "n/a" if cpu.server_queued is None else cpu.server_queued,
            cpu.client,
            f"{cpu.machine:.0f} % of {os.cpu_count()}",
            " + ".join(f"{mb:.0f}" for mb in self.resident_mb),
        )


HEADER = (
    "scenario", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "hit rate",
    "L1/L2 hits", "lookups/req", "misses", "server CPU", "server queued", "client CPU",
    "machine CPU", "RSS MiB",
)  # fmt: skip
FORMATS = {"req/s": "{:,.0f}", "hit rate": "{:.1f} %"} | dict.fromkeys(
    ("server CPU", "server queued", "client CPU"), "{:.0f} %"
)
Target = ServerProcess | Peer


async def run_scenario(
    name: str,
    servers: Sequence[tuple[Target, httpx.AsyncClient | None]],
    requests: Sequence[tuple[bytes, bytes]],
    args: argparse.Namespace,
    report: Report,
) -> Result:
    """Warm up, then time ``args.duration`` seconds of load; ``requests[i]`` is connection i's
    request and the bytes its answer must contain; connection i goes to server i mod n."""
    targets = [servers[i % len(servers)][0] for i in range(len(requests))]
    connections = [
        harness.Connection(target.host, target.port, *request)
        for target, request in zip(targets, requests, strict=True)
    ]
    pids = [server.pid for server, _ in servers]
    clients = [client for _, client in servers if client is not None]
    try:
        warmup = await harness.drive(connections, args.warmup) if args.warmup > 0 else Samples()
        before, cpu_before = await harness.cache_counters(clients), harness.CpuSnapshot.take(pids)
        samples = await harness.drive(connections, args.duration)
        cpu_after, after = harness.CpuSnapshot.take(pids), await harness.cache_counters(clients)
        resident = [harness.resident_mb(pid) for pid in pids]
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))
    samples.absorb(warmup)  # failures in the warm-up count too; only their latencies do not
    cpu = harness.CpuUse.between(cpu_before, cpu_after)
    report.say(f"  {name}: {samples.throughput:,.0f} req/s, {samples.errors} errors")
    return Result(name, samples, before, after, cpu, resident)


async def login_students(graphql: GraphQL) -> list[tuple[str, str]]:
    """(token, student id) of student1 … student40, each checked against its own dashboard."""
    accounts: list[tuple[str, str]] = []
    for number in range(1, DEMO_STUDENTS + 1):
        token = await graphql.login(DEMO_SLUG, f"student{number}@demo.school")
        data = await graphql.data(DASHBOARD, token=token)
        accounts.append((token, str(data["studentDashboard"]["studentId"])))
    if len({student for _, student in accounts}) != DEMO_STUDENTS:
        raise BenchmarkError("the students' dashboards do not have distinct student ids")
    return accounts


async def teacher_page(graphql: GraphQL) -> tuple[str, str]:
    """(token, classroom id) of the demo teacher and class 10-A, its page checked once."""
    token = await graphql.login(DEMO_SLUG, "teacher@demo.school")
    edges = (await graphql.data(CLASSROOMS, token=token))["classrooms"]["edges"]
    [classroom] = [edge["node"]["id"] for edge in edges if edge["node"]["name"] == "10-A"]
    await graphql.data(CLASS_PAGE, {"id": classroom}, token)
    return token, classroom


def checks(results: Sequence[Result], report: Report) -> None:
    """Each cached read against the trivial query and its own p50; the crowd; the peer."""
    report.say("", "cached reads against the trivial query, and their tails:")
    trivial = results[0].samples.throughput
    for result in results[1:4]:
        s = result.samples
        ratio, tail = s.throughput / trivial, s.p(99) / s.p(50)
        detail = (
            f"{ratio:.2f}x trivial (target >= {TARGET_RATIO:.2f}x), "
            f"p99 {tail:.2f}x p50 (target <= {TARGET_TAIL:.1f}x)"
        )
        report.check(result.name, ratio >= TARGET_RATIO and tail <= TARGET_TAIL, detail)
    crowd = results[5]
    p95, errors = crowd.samples.p(95), crowd.samples.errors
    resident = " + ".join(f"{mb:.0f}" for mb in crowd.resident_mb)
    detail = (
        f"p95 {p95:.0f} ms (target < 250), {errors} errors, RSS {resident} MiB (target < 150 each)"
    )
    report.check(crowd.name, p95 < 250 and not errors and max(crowd.resident_mb) < 150, detail)
    if len(results) > 7:
        peer_trivial, peer_cached = (result.samples.throughput for result in results[6:8])
        ratio = results[1].samples.throughput / peer_cached
        detail = (
            f"{ratio:.2f}x the peer's cached dashboard (target >= {TARGET_PEER_RATIO:.1f}x); "
            f"the peer's own ratio to its trivial query {peer_cached / peer_trivial:.2f}x"
        )
        report.check("dashboard, 1 student", ratio >= TARGET_PEER_RATIO, detail)


async def benchmark(args: argparse.Namespace, db: ScratchDatabase, report: Report) -> list[Result]:
    """Every scenario: three servers of ours (one with the response cache off) and the peer."""
    seconds = await harness.seed_demo_school(db.settings)
    report.say(f"seeded the demo tenant in {seconds:.1f} s")
    uncached_env = {**db.env, "ROLLCALL_RESPONSE_CACHE": "off"}
    async with (
        harness.served(db.env) as (server, graphql),
        harness.served(db.env) as (second, second_graphql),
        harness.served(uncached_env) as (uncached, uncached_graphql),
        peer_server(report) as peer,
    ):
        started = time.perf_counter()
        accounts = await login_students(graphql)
        teacher, classroom = await teacher_page(graphql)
        report.say(
            f"logged in {len(accounts)} students and the teacher in "
            f"{time.perf_counter() - started:.1f} s; servers {server.pid}, {second.pid} and "
            f"{uncached.pid} (response cache off) at {server.base_url}, {second.base_url}, "
            f"{uncached.base_url}"
        )
        host, port, n = server.host, server.port, args.connections

        def request(
            query: str, token: str, name: str | None, expect: str, **variables: str
        ) -> tuple[bytes, bytes]:
            body = harness.graphql_request(host, port, query, token, name, variables)
            return body, expect.encode()

        def dashboard(i: int) -> tuple[bytes, bytes]:
            token, student = accounts[i % DEMO_STUDENTS]
            return request(DASHBOARD, token, "Dashboard", f'"{student}"')

        student = accounts[0][0]
        one, off = [(server, graphql.client)], [(uncached, uncached_graphql.client)]
        crowd = [*one, (second, second_graphql.client)]
        page = request(CLASS_PAGE, teacher, "ClassPage", f'"{classroom}"', id=classroom)
        scenarios = [
            ("trivial { __typename }", one, [request(TRIVIAL, student, None, "__typename")] * n),
            ("dashboard, 1 student", one, [dashboard(0)] * n),
            (f"dashboard, {DEMO_STUDENTS} students", one, [dashboard(i) for i in range(n)]),
            ("teacher's class page", one, [page] * n),
            ("dashboard, 1 student, response cache off", off, [dashboard(0)] * n),
            (
                f"dashboard, {DEMO_STUDENTS} students, {MANY_CONNECTIONS} clients, 2 servers",
                crowd,
                [dashboard(i) for i in range(MANY_CONNECTIONS)],
            ),
        ]
        if peer is not None:
            yoga = [(peer, None)]
            scenarios += [
                ("peer: Yoga { __typename }", yoga, [request(TRIVIAL, student, None, "Query")] * n),
                (
                    "peer: Yoga cached dashboard",
                    yoga,
                    [request(DASHBOARD, student, "Dashboard", "studentDashboard")] * n,
                ),
            ]
        report.say(
            f"measuring {len(scenarios)} scenarios, {args.warmup:g} s warm-up + "
            f"{args.duration:g} s each…"
        )
        results = [
            await run_scenario(name, servers, requests, args, report)
            for name, servers, requests in scenarios
        ]
    report.table("scenarios", HEADER, [result.cells() for result in results], formats=FORMATS)
    report.say(
        "(server/client CPU: 100 % = one core; server queued: share of the window the server's "
        "event loop waited, runnable, for a core; machine CPU: all cores, every process)"
    )
    checks(results, report)
    for result in results:
        if result.samples.first_error:
            report.say(f"first error in {result.name}: {result.samples.first_error}")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    about = "Throughput of cached reads against { __typename } over HTTP."
    arguments = harness.parser("cache", about)
    arguments.add_argument("--duration", type=float, default=10.0, help="timed seconds each")
    arguments.add_argument("--warmup", type=float, default=2.0, help="untimed seconds before each")
    arguments.add_argument("--connections", type=int, default=50, help="keep-alive connections")
    args = arguments.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0 or args.connections < 1:
        arguments.error("--duration must be positive, --warmup not negative, --connections >= 1")
    report = Report("cache", as_json=args.json)
    with harness.scratch_database("cache", redis_db=11, keep=args.keep) as db:
        report.say(
            f"rollcall cache benchmark: {os.cpu_count()} CPUs, {args.connections} connections, "
            f"{args.duration:g} s after {args.warmup:g} s warm-up per scenario, {db.describe()}"
        )
        results = harness.run(benchmark(args, db, report))
    return report.finish(failed=any(r.samples.errors for r in results), strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
