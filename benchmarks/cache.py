"""Cache throughput benchmark: cached reads against ``{ __typename }`` over HTTP.

Creates a throwaway database seeded with the demo tenant (``services.seed.seed_demo``: 40
students, 30 days x 6 periods), flushes a Redis database of its own, starts ``rollcall serve``
(one uvicorn worker, ``ROLLCALL_RATE_LIMITS=off``) and logs in as all 40 students and the
teacher. Then, in one run against that one server, it loads the server with a fixed number of
HTTP/1.1 keep-alive connections (50 by default), each sending its next request as soon as the
previous answer is in, for a fixed time after an untimed warm-up:

a. ``{ __typename }`` with student1's token (it pays the token check, like the dashboard);
b. the ``studentDashboard`` query a frontend sends, student1's own dashboard on every connection;
c. the same query with 40 students' tokens, connection ``i`` using student ``i % 40 + 1``;
d. the class page a teacher loads: 10-A's ``classStatistics`` and its 40 ``classRankings``;
e. (b) with the response cache off (``ROLLCALL_RESPONSE_CACHE=off``, a second server): what
   each read costs when the executor runs;
f. (c) from 500 connections spread over two server processes;
g. the peer, when Node.js is installed: GraphQL Yoga 5 with its response-cache plugin serving
   the same dashboard (``benchmarks/peer``, installed with ``npm ci`` on first use), its
   ``{ __typename }`` and its cached dashboard.

For each it prints requests/s, p50/p95/p99/max latency, errors, the cache's hit rate over the
timed window (from the counters ``/health/ready`` reports: the response cache's lookups count
there too), the CPU the servers and this script used and the servers' resident memory; then
each cached read's throughput against the trivial query's (target: at least 0.9x) and its p99
against its p50 (target: at most 2x).

The load generator is a small raw-asyncio HTTP/1.1 client in this file: httpx costs too much
CPU per request to keep one uvicorn worker busy from the same machine.

Run from the repository root::

    .venv/bin/python -m benchmarks.cache [--duration 10] [--connections 50] [--keep]

A script, not a test: it prints figures and exits 1 only when a request failed (or, with
``--strict``, when a target was missed). It FLUSHES its Redis database (``ROLLCALL_REDIS_URL``,
or ``redis://127.0.0.1:6379/11``) at the start and, unless ``--keep``, at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ``python benchmarks/cache.py`` finds the project packages

import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from benchmarks.foundation import (  # noqa: E402
    BenchmarkError,
    GraphQL,
    percentile,
    scratch_database,
)
from rollcall.processes import (  # noqa: E402
    ServerProcess,
    free_port,
    node_packages,
    running_server,
)
from services.platform.db import create_engine, create_session_factory  # noqa: E402
from services.platform.settings import Settings  # noqa: E402
from services.seed import DEMO_SLUG, seed_demo  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
PEER = ROOT / "benchmarks" / "peer"
TARGET_PEER_RATIO = 0.6
DEMO_STUDENTS = 40
TARGET_RATIO = 0.9
TARGET_TAIL = 2.0  # p99 at most this many times p50
MANY_CONNECTIONS = 500
REQUEST_TIMEOUT = 30.0  # a connection with no answer this long after the window is an error

TRIVIAL = "{ __typename }"
DASHBOARD = (
    "query Dashboard { studentDashboard { studentId totalClasses presentDays absentDays sickDays "
    "leaveDays attendanceRate classAverage ranking classSize percentile trend standing "
    "lastUpdated statisticsCalculatedAt } }"
)

CLASS_PAGE = (
    "query ClassPage($id: ID!) { classStatistics(classroomId: $id) { classroomId "
    "totalStudents averageAttendance medianAttendance highestAttendance lowestAttendance "
    "studentsAtRisk lastCalculated } classRankings(classroomId: $id, first: 40) { totalCount "
    "edges { cursor node { studentId rank totalStudents percentile attendanceRate } } } }"
)
CLASSROOMS = "query Classes { classrooms { edges { node { id name } } } }"

logger = logging.getLogger("benchmarks.cache")


# --------------------------------------------------------------------------- load generator


class Connection:
    """One HTTP/1.1 keep-alive connection sending the same pre-built request over and over."""

    def __init__(self, host: str, port: int, request: bytes, expect: bytes) -> None:
        self.host = host
        self.port = port
        self.request = request
        self.expect = expect  # bytes a correct body contains
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def answer(self) -> tuple[int, bytes]:
        """Send the request and read the whole answer: its status and body. ValueError for an
        answer without a length (the connection is closed)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
        status = int(head[9:12])
        start = head.find(b"\r\ncontent-length:")
        if start < 0:
            await self.close()
            raise ValueError(f"HTTP {status} without content-length: {head[:200]!r}")
        start += len(b"\r\ncontent-length:")
        body = await self.reader.readexactly(int(head[start : head.index(b"\r\n", start)]))
        if b"\r\nconnection: close" in head:
            await self.close()
        return status, body

    async def exchange(self) -> str | None:
        """Send the request and read the whole answer; an error message, or None when fine."""
        try:
            status, body = await self.answer()
        except ValueError as error:
            return str(error)
        if status != 200:
            return f"HTTP {status}: {body[:200]!r}"
        if b'"errors"' in body:
            return f"GraphQL errors: {body[:300]!r}"
        if self.expect not in body:
            return f"unexpected body (no {self.expect!r}): {body[:200]!r}"
        return None


@dataclass
class Phase:
    """What one stretch of load did: latencies (ms) of the requests started in it."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def fail(self, error: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or error


async def drive(connections: Sequence[Connection], seconds: float) -> Phase:
    """Every connection sends request after request until ``seconds`` have passed; requests
    started before then are finished and counted, so throughput is requests / ``Phase.seconds``
    (from the start to the last answer)."""
    phase = Phase()
    clock = time.perf_counter
    started = clock()
    stop = started + seconds

    async def run(connection: Connection) -> None:
        latencies = phase.latencies
        while (sent := clock()) < stop:
            try:
                error = await connection.exchange()
            except (OSError, EOFError, ValueError, asyncio.LimitOverrunError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                await connection.close()
                await asyncio.sleep(0.01)  # do not spin on a server that refuses connections
            latencies.append((clock() - sent) * 1000)
            if error is not None:
                phase.fail(error)

    tasks = [asyncio.ensure_future(run(connection)) for connection in connections]
    _, pending = await asyncio.wait(tasks, timeout=seconds + REQUEST_TIMEOUT)
    for task in pending:
        task.cancel()
        phase.fail(f"no answer within {REQUEST_TIMEOUT:.0f} s of the end")
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            phase.fail(f"load generator failed: {task.exception()!r}")
    phase.seconds = clock() - started
    return phase


def graphql_request(
    host: str,
    port: int,
    query: str,
    token: str,
    operation: str | None,
    variables: dict[str, Any] | None = None,
) -> bytes:
    payload: dict[str, Any] = {"query": query}
    if operation is not None:
        payload.update(operationName=operation, variables=variables or {})
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        f"POST /graphql HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Accept: application/json\r\n"
        f"Content-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"\r\n"
    )
    return head.encode() + body


# --------------------------------------------------------------------------- server


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def queued_seconds(pid: int) -> float | None:
    """How long the process's main thread (the event loop) has waited, runnable, for a core;
    None when the kernel does not keep scheduler statistics."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def resident_mb(pid: int) -> float:
    """The process's resident set size now, in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores so far, from /proc/stat."""
    user, nice, system, idle, iowait, *rest = map(int, Path("/proc/stat").read_text().split()[1:9])
    busy = user + nice + system + sum(rest)  # irq, softirq, steal
    return busy, busy + idle + iowait


@dataclass(frozen=True)
class CpuSnapshot:
    server: float
    server_queued: float | None
    client: float
    machine: tuple[int, int]

    @classmethod
    def take(cls, pids: Sequence[int]) -> CpuSnapshot:
        queued = [queued_seconds(pid) for pid in pids]
        return cls(
            server=sum(cpu_seconds(pid) for pid in pids),
            server_queued=None if None in queued else sum(q or 0.0 for q in queued),
            client=time.process_time(),
            machine=machine_ticks(),
        )


@dataclass(frozen=True)
class CpuUse:
    """CPU over a window: shares of one core for the server and this script, the share of the
    window the server's event loop spent runnable but not running, the machine's busy share."""

    server: float
    server_queued: float | None
    client: float
    machine: float

    @classmethod
    def between(cls, before: CpuSnapshot, after: CpuSnapshot, wall: float) -> CpuUse:
        queued = None
        if before.server_queued is not None and after.server_queued is not None:
            queued = (after.server_queued - before.server_queued) / wall * 100
        busy = after.machine[0] - before.machine[0]
        total = after.machine[1] - before.machine[1]
        return cls(
            server=(after.server - before.server) / wall * 100,
            server_queued=queued,
            client=(after.client - before.client) / wall * 100,
            machine=busy / total * 100 if total else math.nan,
        )


async def cache_counters(clients: Sequence[httpx.AsyncClient]) -> dict[str, int] | None:
    """The servers' cache counters from /health/ready, summed; None when one is not reported
    (or there is no server of ours to ask)."""
    if not clients:
        return None
    total: dict[str, int] = {}
    for client in clients:
        try:
            response = await client.get("/health/ready")
            counters = response.json().get("cache")
        except (httpx.HTTPError, ValueError) as error:
            logger.warning("cannot read /health/ready: %s", error)
            return None
        if not isinstance(counters, dict) or "hits" not in counters:
            return None
        for name, value in counters.items():
            if isinstance(value, int):
                total[name] = total.get(name, 0) + value
    return total


@dataclass(frozen=True)
class Peer:
    """The peer server (benchmarks/peer/server.mjs), as the load generator needs it."""

    host: str
    port: int
    pid: int


@contextlib.asynccontextmanager
async def peer_server() -> Any:
    """The Yoga peer on a free port until the block ends; None without Node.js (or when its
    packages cannot be installed)."""
    if (unusable := await node_packages(PEER)) is not None:
        print(f"the peer is not measured: {unusable}", flush=True)
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


# --------------------------------------------------------------------------- scenarios


@dataclass
class Result:
    name: str
    phase: Phase
    before: dict[str, int] | None
    after: dict[str, int] | None
    cpu: CpuUse
    resident_mb: list[float]  # each server's, after the window

    @property
    def throughput(self) -> float:
        return len(self.phase.latencies) / self.phase.seconds if self.phase.seconds else 0.0

    def counter(self, name: str) -> int | None:
        if self.before is None or self.after is None or name not in self.after:
            return None
        return self.after[name] - self.before.get(name, 0)

    @property
    def lookups(self) -> int | None:
        parts = [self.counter(name) for name in ("hits", "misses", "bypassed")]
        return None if None in parts else sum(p for p in parts if p is not None)


async def run_scenario(
    name: str,
    servers: Sequence[tuple[ServerProcess | Peer, httpx.AsyncClient | None]],
    requests: Sequence[tuple[bytes, bytes]],
    args: argparse.Namespace,
) -> Result:
    """Warm up, then time ``args.duration`` seconds of load; ``requests[i]`` is connection i's
    request and the bytes its answer must contain; connection i goes to server i mod n."""
    connections = [
        Connection(servers[i % len(servers)][0].host, servers[i % len(servers)][0].port, *request)
        for i, request in enumerate(requests)
    ]
    pids = [server.pid for server, _ in servers]
    clients = [client for _, client in servers if client is not None]
    try:
        warmup = await drive(connections, args.warmup) if args.warmup > 0 else Phase()
        before = await cache_counters(clients)
        cpu_before = CpuSnapshot.take(pids)
        phase = await drive(connections, args.duration)
        cpu_after = CpuSnapshot.take(pids)
        after = await cache_counters(clients)
        resident = [resident_mb(pid) for pid in pids]
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))
    if warmup.errors:  # failures in the warm-up count too; only their latencies do not
        phase.errors += warmup.errors
        phase.first_error = phase.first_error or warmup.first_error
    result = Result(
        name=name,
        phase=phase,
        before=before,
        after=after,
        cpu=CpuUse.between(cpu_before, cpu_after, phase.seconds or math.nan),
        resident_mb=resident,
    )
    print(f"  {name}: {result.throughput:,.0f} req/s, {result.phase.errors} errors", flush=True)
    return result


async def login_students(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    """(token, student id) of student1 … student40, each checked against its own dashboard."""
    graphql = GraphQL(client)
    accounts: list[tuple[str, str]] = []
    for number in range(1, DEMO_STUDENTS + 1):
        token = await graphql.login(DEMO_SLUG, f"student{number}@demo.school")
        _, data, error = await graphql.timed(DASHBOARD, {}, token)
        if error is not None or data is None:
            raise BenchmarkError(f"student{number}'s dashboard failed: {error}")
        accounts.append((token, str(data["studentDashboard"]["studentId"])))
    if len({student for _, student in accounts}) != DEMO_STUDENTS:
        raise BenchmarkError("the students' dashboards do not have distinct student ids")
    return accounts


async def teacher_page(client: httpx.AsyncClient) -> tuple[str, str]:
    """(token, classroom id) of the demo teacher and class 10-A, its page checked once."""
    graphql = GraphQL(client)
    token = await graphql.login(DEMO_SLUG, "teacher@demo.school")
    _, data, error = await graphql.timed(CLASSROOMS, {}, token)
    if error is not None or data is None:
        raise BenchmarkError(f"the teacher's classes failed: {error}")
    [classroom] = [
        edge["node"]["id"] for edge in data["classrooms"]["edges"] if edge["node"]["name"] == "10-A"
    ]
    _, data, error = await graphql.timed(CLASS_PAGE, {"id": classroom}, token)
    if error is not None or data is None:
        raise BenchmarkError(f"the teacher's class page failed: {error}")
    return token, classroom


# --------------------------------------------------------------------------- report


def hit_rate(result: Result) -> str:
    lookups, hits = result.lookups, result.counter("hits")
    if lookups is None or hits is None:
        return "n/a"
    return f"{hits / lookups * 100:.1f} %" if lookups else "-"


def split(result: Result) -> str:
    l1, l2 = result.counter("l1_hits"), result.counter("l2_hits")
    if l1 is None or l2 is None:
        return "n/a"
    return f"{l1}/{l2}"


def per_request(result: Result) -> str:
    lookups = result.lookups
    if lookups is None:
        return "n/a"
    requests = len(result.phase.latencies)
    return f"{lookups / requests:.2f}" if requests else "-"


def render_table(results: Sequence[Result]) -> str:
    header = (
        "scenario",
        "requests",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "errors",
        "hit rate",
        "L1/L2 hits",
        "lookups/req",
        "misses",
        "server CPU",
        "server queued",
        "client CPU",
        "machine CPU",
        "RSS MiB",
    )
    rows: list[tuple[str, ...]] = []
    for r in results:
        samples = r.phase.latencies or [math.nan]
        misses = r.counter("misses")
        rows.append(
            (
                r.name,
                str(len(r.phase.latencies)),
                f"{r.throughput:,.0f}",
                f"{percentile(samples, 50):.2f}",
                f"{percentile(samples, 95):.2f}",
                f"{percentile(samples, 99):.2f}",
                f"{max(samples):.2f}",
                str(r.phase.errors),
                hit_rate(r),
                split(r),
                per_request(r),
                "n/a" if misses is None else str(misses),
                f"{r.cpu.server:.0f} %",
                "n/a" if r.cpu.server_queued is None else f"{r.cpu.server_queued:.0f} %",
                f"{r.cpu.client:.0f} %",
                f"{r.cpu.machine:.0f} % of {os.cpu_count()}",
                " + ".join(f"{mb:.0f}" for mb in r.resident_mb),
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def ratio_lines(trivial: Result, cached: Sequence[Result]) -> tuple[list[str], bool]:
    """Per cached scenario: its throughput against the trivial query's and its p99 against its
    p50; and whether all met their targets."""
    lines: list[str] = []
    passed = True
    for result in cached:
        ratio = result.throughput / trivial.throughput if trivial.throughput else math.nan
        samples = result.phase.latencies or [math.nan]
        tail = percentile(samples, 99) / percentile(samples, 50)
        ok = ratio >= TARGET_RATIO and tail <= TARGET_TAIL
        passed = passed and ok
        lines.append(
            f"  {result.name}: {ratio:.2f}x trivial (target >= {TARGET_RATIO:.2f}x), "
            f"p99 {tail:.2f}x p50 (target <= {TARGET_TAIL:.1f}x): {'PASS' if ok else 'FAIL'}"
        )
    return lines, passed


# --------------------------------------------------------------------------- main


async def seed(settings: Settings) -> float:
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_max=2)
    started = time.perf_counter()
    try:
        await seed_demo(
            session_factory=create_session_factory(engine), today=datetime.now(UTC).date()
        )
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def flush_redis(redis_url: str) -> None:
    async with aioredis.Redis.from_url(redis_url) as redis:
        await redis.flushdb()


async def benchmark(
    args: argparse.Namespace, settings: Settings, env: dict[str, str]
) -> tuple[list[Result], bool]:
    """Every scenario against one server; the results and whether the ratio targets were met."""
    assert settings.redis_url is not None
    seconds = await seed(settings)
    print(f"seeded the demo tenant in {seconds:.1f} s", flush=True)
    await flush_redis(settings.redis_url)
    uncached_env = {**env, "ROLLCALL_RESPONSE_CACHE": "off"}
    try:
        async with (
            running_server(env) as server,
            running_server(env) as second,
            running_server(uncached_env) as uncached,
            peer_server() as peer,
            httpx.AsyncClient(base_url=server.base_url, timeout=30.0) as client,
            httpx.AsyncClient(base_url=second.base_url, timeout=30.0) as second_client,
            httpx.AsyncClient(base_url=uncached.base_url, timeout=30.0) as uncached_client,
        ):
            started = time.perf_counter()
            accounts = await login_students(client)
            teacher, classroom = await teacher_page(client)
            print(
                f"logged in {len(accounts)} students and the teacher in "
                f"{time.perf_counter() - started:.1f} s; servers {server.pid}, {second.pid} and "
                f"{uncached.pid} (response cache off) at {server.base_url}, {second.base_url}, "
                f"{uncached.base_url}",
                flush=True,
            )
            host, port = server.host, server.port

            def dashboard(account: tuple[str, str]) -> tuple[bytes, bytes]:
                token, student = account
                request = graphql_request(host, port, DASHBOARD, token, "Dashboard")
                return request, f'"{student}"'.encode()

            n = args.connections
            trivial = (graphql_request(host, port, TRIVIAL, accounts[0][0], None), b"__typename")
            page = (
                graphql_request(host, port, CLASS_PAGE, teacher, "ClassPage", {"id": classroom}),
                f'"{classroom}"'.encode(),
            )
            one = [(server, client)]
            scenarios = [
                ("trivial { __typename }", one, [trivial] * n),
                ("dashboard, 1 student", one, [dashboard(accounts[0])] * n),
                (
                    f"dashboard, {DEMO_STUDENTS} students",
                    one,
                    [dashboard(accounts[i % DEMO_STUDENTS]) for i in range(n)],
                ),
                ("teacher's class page", one, [page] * n),
                (
                    "dashboard, 1 student, response cache off",
                    [(uncached, uncached_client)],
                    [dashboard(accounts[0])] * n,
                ),
                (
                    f"dashboard, {DEMO_STUDENTS} students, {MANY_CONNECTIONS} clients, 2 servers",
                    [(server, client), (second, second_client)],
                    [dashboard(accounts[i % DEMO_STUDENTS]) for i in range(MANY_CONNECTIONS)],
                ),
            ]
            if peer is not None:
                peer_connection = (peer, None)
                scenarios += [
                    (
                        "peer: Yoga { __typename }",
                        [peer_connection],
                        [(graphql_request(host, port, TRIVIAL, accounts[0][0], None), b"Query")]
                        * n,
                    ),
                    (
                        "peer: Yoga cached dashboard",
                        [peer_connection],
                        [
                            (
                                graphql_request(host, port, DASHBOARD, accounts[0][0], "Dashboard"),
                                b"studentDashboard",
                            )
                        ]
                        * n,
                    ),
                ]
            print(
                f"measuring {len(scenarios)} scenarios, {args.warmup:g} s warm-up + "
                f"{args.duration:g} s each…",
                flush=True,
            )
            results = [
                await run_scenario(name, servers, requests, args)
                for name, servers, requests in scenarios
            ]
    finally:
        if not args.keep:
            await flush_redis(settings.redis_url)
    print()
    print(render_table(results))
    print(
        "(server/client CPU: 100 % = one core; server queued: share of the window the server's "
        "event loop waited, runnable, for a core; machine CPU: all cores, every process)"
    )
    print()
    print("cached reads against the trivial query, and their tails:")
    lines, passed = ratio_lines(results[0], results[1:4])
    print("\n".join(lines))
    crowd = results[5]
    p95 = percentile(crowd.phase.latencies or [math.nan], 95)
    crowd_ok = p95 < 250 and not crowd.phase.errors and max(crowd.resident_mb) < 150
    passed = passed and crowd_ok
    print(
        f"  {crowd.name}: p95 {p95:.0f} ms (target < 250), {crowd.phase.errors} errors, RSS "
        + " + ".join(f"{mb:.0f}" for mb in crowd.resident_mb)
        + f" MiB (target < 150 each): {'PASS' if crowd_ok else 'FAIL'}"
    )
    if len(results) > 7:
        peer_trivial, peer_cached = results[6], results[7]
        ratio = results[1].throughput / peer_cached.throughput if peer_cached.throughput else 0
        peer_ok = ratio >= TARGET_PEER_RATIO
        passed = passed and peer_ok
        print(
            f"  dashboard, 1 student: {ratio:.2f}x the peer's cached dashboard (target >= "
            f"{TARGET_PEER_RATIO:.1f}x): {'PASS' if peer_ok else 'FAIL'}; the peer's own ratio "
            f"to its trivial query {peer_cached.throughput / peer_trivial.throughput:.2f}x"
        )
    for result in results:
        if result.phase.first_error:
            print(f"first error in {result.name}: {result.phase.first_error}")
    return results, passed


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run`` on uvloop when it is installed (uvicorn[standard] brings it), so the
    load generator spends as little CPU per request as the server's own loop does."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cache",
        description="Throughput of cached reads against { __typename } over HTTP.",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="timed seconds per scenario")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="untimed seconds of load before each scenario"
    )
    parser.add_argument(
        "--connections", type=int, default=50, help="concurrent keep-alive connections"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database (and Redis data)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0 or args.connections < 1:
        parser.error("--duration must be positive, --warmup not negative, --connections >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    with scratch_database(
        "rollcall_bench_cache", redis_default=DEFAULT_REDIS_URL, keep=args.keep
    ) as db:
        redis = urlsplit(db.settings.redis_url or "")
        print(
            f"rollcall cache benchmark: {os.cpu_count()} CPUs, {args.connections} connections, "
            f"{args.duration:g} s after {args.warmup:g} s warm-up per scenario, "
            f"database {db.name}, Redis {redis.hostname}:{redis.port}{redis.path} (flushed)"
        )
        results, passed = run(benchmark(args, db.settings, db.env))
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    failed_requests = any(result.phase.errors for result in results)
    if failed_requests:
        print("some requests FAILED (see errors above)")
    return 1 if failed_requests or (args.strict and not passed) else 0


if __name__ == "__main__":
    sys.exit(main())
