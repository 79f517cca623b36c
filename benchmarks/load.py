"""School-morning load: logins, teachers marking, dashboard readers and live subscriptions at once,
against two API processes and one worker. What it does and how to read it: benchmarks/README.md."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from benchmarks import harness
from benchmarks.harness import Cell, GraphQL, Report, Samples, School, Subscription
from rollcall.processes import ServerProcess, running_worker
from services.platform.settings import Settings
from services.seed import DEMO_PASSWORD, DEMO_PERIODS

PROCESSES = 2
SEED_DAYS = 30
TARGET_P95_MS = 250.0

DASHBOARD = """
query Dashboard {
  studentDashboard {
    studentId totalClasses presentDays absentDays sickDays leaveDays attendanceRate
    classAverage ranking classSize percentile trend standing lastUpdated statisticsCalculatedAt
  }
}
"""
MARK = """
mutation Mark($input: MarkAttendanceInput!) {
  markAttendance(input: $input) { records { id studentId status } }
}
"""
SUBSCRIPTION = "subscription { dashboardUpdated { studentId attendanceRate standing } }"
STATUSES = ("PRESENT", "PRESENT", "PRESENT", "PRESENT", "PRESENT", "ABSENT", "SICK", "LEAVE")


@dataclass
class Morning:
    """One run's clients (every one an asyncio task of this process) and what they saw."""

    args: argparse.Namespace
    school: School
    servers: Sequence[tuple[ServerProcess, GraphQL]]
    rng: random.Random
    started: float = field(default_factory=time.perf_counter)
    login: Samples = field(default_factory=Samples)
    mark: Samples = field(default_factory=Samples)
    dashboard: Samples = field(default_factory=Samples)
    cache: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("hits", "misses"), 0))

    async def ticks(self, interval: float, rng: random.Random) -> AsyncIterator[None]:
        """Every ``interval`` s from a random offset until the deadline, on schedule, or at
        once when the last answer came late (a saturated stack then sees closed-loop clients,
        and the run still ends on time)."""
        next_at = self.started + rng.uniform(0, interval)
        while next_at < self.started + self.args.seconds:
            await asyncio.sleep(max(next_at - time.perf_counter(), 0))
            yield
            next_at = max(next_at + interval, time.perf_counter())

    async def login_client(self, index: int, starts_at: float) -> None:
        await asyncio.sleep(max(starts_at - time.perf_counter(), 0))
        email, password = self.school.email(index), DEMO_PASSWORD
        variables = {"tenant": self.school.slug, "email": email, "password": password}
        elapsed, data, error = await self.servers[index % PROCESSES][1].timed(
            harness.LOGIN, variables
        )
        if error is None and not (data or {}).get("login", {}).get("token"):
            error = "login answered without a token"
        self.login.record(elapsed, error)

    async def teacher_client(self, index: int) -> None:
        """Marks the teacher's class today, periods 1-6 in turn."""
        teacher, graphql = self.school.teachers[index], self.servers[index % PROCESSES][1]
        rng = random.Random(self.rng.random())
        today, period = datetime.now(UTC).date(), index % DEMO_PERIODS
        async for _ in self.ticks(self.args.mark_interval, rng):
            period = period % DEMO_PERIODS + 1
            marks = {str(s): rng.choice(STATUSES) for s in teacher.student_ids}
            variables = {"input": harness.mark_input(teacher, today, period, marks)}
            elapsed, data, error = await graphql.timed(MARK, variables, teacher.token)
            records = ((data or {}).get("markAttendance") or {}).get("records", [])
            if error is None and len(records) != len(teacher.student_ids):
                error = f"markAttendance returned {len(records)} records"
            self.mark.record(elapsed, error)

    async def reader_client(self, index: int) -> None:
        """A student polling their dashboard over a keep-alive connection of its own with prepared
        bytes: with httpx, this process and not the API was the limit of a run."""
        student_id, token = self.school.students[index]
        server = self.servers[index % PROCESSES][0]
        request = harness.graphql_request(server.host, server.port, DASHBOARD, token, None)
        connection = harness.Connection(server.host, server.port, request, b"")
        try:
            async for _ in self.ticks(self.args.poll_interval, self.rng):
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(harness.REQUEST_TIMEOUT):
                        status, raw = await ask(connection)
                    error = self.dashboard_error(status, orjson.loads(raw), student_id)
                except (OSError, EOFError, ValueError, asyncio.LimitOverrunError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    await connection.close()
                self.dashboard.record((time.perf_counter() - started) * 1000, error)
        finally:
            await connection.close()

    def dashboard_error(self, status: int, body: dict[str, Any], student: uuid.UUID) -> str | None:
        """What is wrong with one dashboard answer, if anything; its cache figures tallied."""
        if status != 200 or body.get("errors"):
            first = (body.get("errors") or [{}])[0]
            code = (first.get("extensions") or {}).get("code", "?")
            return f"HTTP {status} {code}: {first.get('message')}"
        cache = (body.get("extensions") or {}).get("freshness", {}).get("cache", {})
        self.cache["hits"] += cache.get("hits", 0)
        self.cache["misses"] += cache.get("misses", 0) + cache.get("bypassed", 0)
        if (body.get("data") or {}).get("studentDashboard", {}).get("studentId") != str(student):
            return "studentDashboard of another student"
        return None

    async def run(self) -> None:
        logins = min(self.args.logins, len(self.school.students))
        await asyncio.gather(
            *(
                self.login_client(index, self.started + self.args.seconds * index / logins)
                for index in range(logins)
            ),
            *(self.teacher_client(index) for index in range(len(self.school.teachers))),
            *(self.reader_client(index) for index in range(len(self.school.students))),
        )


async def ask(connection: harness.Connection) -> tuple[int, bytes]:
    """``connection.answer()``; a kept-alive connection the server closed while it sat idle
    (uvicorn closes them after 5 s) is opened again once, as HTTP clients do."""
    reused = connection.writer is not None
    try:
        return await connection.answer()
    except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as error:
        if not reused or getattr(error, "partial", b""):
            raise
        await connection.close()
        return await connection.answer()


def hit_rate(before: dict[str, int] | None, after: dict[str, int] | None) -> str:
    """The servers' cache hit rate between two readings of their counters."""
    if before is None or after is None:
        return "not reported"
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    hits = delta.get("hits", 0)
    if not (lookups := hits + delta.get("misses", 0) + delta.get("bypassed", 0)):
        return "no lookups"
    return (
        f"{hits / lookups * 100:.1f} % of {lookups:,} lookups (both processes, every cached read)"
    )


def print_figures(
    report: Report,
    morning: Morning,
    subscriptions: Sequence[Subscription],
    cpu: harness.CpuUse,
    hits: str,
) -> bool:
    """The table, the lines after it and the target; whether every request succeeded."""
    seconds = morning.args.seconds
    operations = [
        ("login", morning.login),
        (f"markAttendance ({morning.args.students_per_class} students)", morning.mark),
        ("studentDashboard", morning.dashboard),
    ]
    header = ("operation", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "req/s", "errors", "err %")

    def row(name: str, op: Samples) -> tuple[Cell, ...]:
        n = len(op.latencies)
        rate = op.errors / n * 100 if n else None
        return (name, n, op.p(50), op.p(95), op.p(99), op.max, n / seconds, op.errors, rate)

    rows = [row(name, op) for name, op in operations]
    formats = {name: "{:.1f}" for name in header[2:7]} | {"err %": "{:.2f}"}
    report.table("operations", header, rows, formats=formats)
    requests = sum(len(op.latencies) for _, op in operations)
    errors = sum(op.errors for _, op in operations)
    report.say("")
    report.figure(
        "requests/s",
        requests / seconds,
        f"throughput: {requests / seconds:.0f} requests/s over {seconds:g} s; "
        f"errors {errors} of {requests} ({errors / max(requests, 1) * 100:.2f} %)",
    )
    if lookups := morning.cache["hits"] + morning.cache["misses"]:
        rate = morning.cache["hits"] / lookups * 100
        text = f"cache hit rate (dashboards' extensions.freshness.cache): {rate:.1f} % of "
        report.figure("dashboard cache hit %", rate, f"{text}{lookups:,} lookups")
    report.figure("server cache hit rate", hits, f"cache hit rate (/health/ready counters): {hits}")
    failures = [s.error or "closed by the server" for s in subscriptions if s.error or s.dropped]
    pushed = sum(
        s.client.pending(s.operation) - s.dropped  # a closed connection queues its close
        for s in subscriptions
        if s.client is not None and s.error is None
    )
    first = f" (first: {failures[0]})" if failures else ""
    report.figure(
        "dashboards pushed",
        pushed,
        f"subscriptions: {len(subscriptions) - len(failures)} of {len(subscriptions)} open, "
        f"{pushed:,} dashboards pushed, {len(failures)} failed{first}",
    )
    *apis, worker = cpu.servers
    report.figure(
        "API CPU %",
        sum(apis),
        "CPU (100 % = one core): API processes "
        + " + ".join(f"{share:.0f} %" for share in apis)
        + f", worker {worker:.0f} %, this load generator {cpu.client:.0f} %; "
        f"machine {cpu.machine:.0f} % busy of {os.cpu_count()} cores "
        f"(PostgreSQL, Redis and anything else running), load average {os.getloadavg()[0]:.1f}",
    )
    if None not in (queued := cpu.queued[:-1]):
        shares = " + ".join(f"{share:.0f} %" for share in queued if share is not None)
        report.say(f"API event loops waited, runnable, for a core: {shares} of the window")
    for name, op in operations:
        if op.first_error:
            report.say(f"first error of {name}: {op.first_error}")
    met = not failures and all(
        not op.errors and op.latencies and op.p(95) < TARGET_P95_MS for _, op in operations
    )
    clients = len(morning.school.students) + len(morning.school.teachers)
    report.say("")
    report.check(
        f"target: {clients} concurrent clients on {PROCESSES} API processes",
        met,
        f"p95 < {TARGET_P95_MS:.0f} ms for every operation, 0 errors",
    )
    return errors == 0 and not failures


async def benchmark(
    args: argparse.Namespace, settings: Settings, env: dict[str, str], report: Report
) -> bool:
    """The whole run; whether every request succeeded."""
    started = time.perf_counter()
    school = await harness.seed_school(
        settings, classes=args.classes, students_per_class=args.students_per_class, days=SEED_DAYS
    )
    report.say(
        f"seeded {len(school.students)} students with accounts in {len(school.teachers)} classes "
        f"x {SEED_DAYS} days x {DEMO_PERIODS} periods in {time.perf_counter() - started:.1f} s"
    )
    # The PostgreSQL server is shared (max_connections 100 by default): each process's pool
    # is kept small enough that the three of them fit beside everything else.
    pool = str(args.db_pool_max)
    env |= {"ROLLCALL_DB_POOL_MIN": pool, "ROLLCALL_DB_POOL_MAX": pool}
    # Every subscriber connects from this address at once: the most the API allows.
    env["ROLLCALL_WS_UNAUTHENTICATED_PER_ADDRESS"] = "10000"
    # Every client may hold a connection at once: a smaller httpx pool would queue requests
    # in this process and count the wait as the server's latency.
    limits = httpx.Limits(max_connections=len(school.students) + len(school.teachers) + 50)
    async with (
        harness.api_processes(env, PROCESSES, limits=limits) as servers,
        running_worker(env) as worker,
    ):
        report.say(
            f"stack: API pids {[s.pid for s, _ in servers]} at "
            f"{[s.base_url for s, _ in servers]}, worker pid {worker.pid}; {args.seconds:g} s "
            "of load…"
        )
        started = time.perf_counter()
        subscriptions = [
            Subscription(servers[index % PROCESSES][0].ws_url, token, initial=True)
            for index, (_, token) in enumerate(school.students[: args.subscribers])
        ]
        async with harness.holding(
            subscriptions, SUBSCRIPTION, concurrency=max(args.subscribers, 1)
        ):
            opened = sum(s.error is None for s in subscriptions)
            report.say(f"{opened} subscriptions open in {time.perf_counter() - started:.1f} s")
            https = [graphql.client for _, graphql in servers]
            before = await harness.cache_counters(https)
            pids = [*(s.pid for s, _ in servers), worker.pid]
            cpu_before = harness.CpuSnapshot.take(pids)
            morning = Morning(args, school, servers, random.Random(args.seed))
            await morning.run()
            cpu = harness.CpuUse.between(cpu_before, harness.CpuSnapshot.take(pids))
            hits = hit_rate(before, await harness.cache_counters(https))
            succeeded = print_figures(report, morning, subscriptions, cpu, hits)
        if worker.process.returncode is not None:
            report.say(f"the worker exited early:\n{worker.log_tail()}")
    return succeeded


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    arguments = harness.parser("load", "School-morning load on two API processes and a worker.")
    for flag, kind, default, text in (
        ("--seconds", float, 60.0, "length of the load"),
        ("--classes", int, 50, "classes, one teacher each"),
        ("--students-per-class", int, 10, "readers per class"),
        ("--logins", int, 300, "logins spread over the run"),
        ("--subscribers", int, 200, "live connections held"),
        ("--poll-interval", float, 2.0, "seconds between a reader's polls"),
        ("--mark-interval", float, 5.0, "seconds between a teacher's marks"),
        ("--db-pool-max", int, 15, "ROLLCALL_DB_POOL_MAX of each process"),
        ("--seed", int, 1, "random seed"),
    ):
        arguments.add_argument(flag, type=kind, default=default, help=text)
    args = arguments.parse_args(argv)
    if not 1 <= args.seconds <= 600 or min(args.poll_interval, args.mark_interval) <= 0:
        arguments.error("--seconds must be 1-600; the intervals positive")
    if args.classes < 1 or args.students_per_class < 1 or args.db_pool_max < 2:
        arguments.error("--classes and --students-per-class at least 1, --db-pool-max at least 2")
    if not 0 <= args.subscribers <= args.classes * args.students_per_class or args.logins < 0:
        arguments.error("--subscribers from 0 to the students; --logins not negative")
    for url in (
        os.environ.get("ROLLCALL_DATABASE_URL") or harness.DEFAULT_DATABASE_URL,
        os.environ.get("ROLLCALL_REDIS_URL") or "redis://127.0.0.1",
    ):
        if urlsplit(url).hostname not in {"127.0.0.1", "localhost", "::1"}:
            arguments.error(f"loopback servers only: {url}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report("load", as_json=args.json)
    soft, _ = harness.raise_open_files_limit()
    with harness.scratch_database("load", redis_db=14, keep=args.keep) as db:
        report.say(
            f"rollcall load benchmark: {os.cpu_count()} CPUs, {PROCESSES} API processes + 1 "
            f"worker, ROLLCALL_RATE_LIMITS=off, open files limit {soft}, {db.describe()}"
        )
        succeeded = harness.run(benchmark(args, db.settings, dict(db.env), report))
    return report.finish(failed=not succeeded, strict=args.strict)


if __name__ == "__main__":
    raise SystemExit(main())
