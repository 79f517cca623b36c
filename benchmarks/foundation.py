"""Latency of the hot paths (dashboards, rankings, marking), in-process and over HTTP: see
benchmarks/README.md."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import httpx
import redis.asyncio as aioredis
from arq.constants import default_queue_name, job_key_prefix
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from benchmarks.harness import (
    BenchmarkError,
    Call,
    Cell,
    GraphQL,
    Report,
    Samples,
    ScratchDatabase,
    execute_autocommit,
    parser,
    run_concurrent,
    run_sequential,
    scratch_database,
    verdict,
)
from graph.app import create_app
from rollcall.processes import running_server
from services.bulk_seed import seed_bulk
from services.models import Classroom, ClassroomSubject, Student, Tenant
from services.platform.db import SessionFactory, create_engine, create_session_factory
from services.seed import DEMO_PERIODS, school_days

DASHBOARD_PREFIX = "bench-dash"
RANKINGS_PREFIX = "bench-rank"
DASHBOARD_STUDENTS = 2_000
RANKINGS_STUDENTS = 5_000
SEED_DAYS = 30
MARKS_PER_CALL = 40
PAGE_SIZE = 50
DEEP_PAGE_FROM = 10  # "deep" pages start after the 10th page's cursor
IN_PROCESS = "in-process"
HTTP = "http"
TARGET_DASHBOARD_MS = 20.0
TARGET_RANKINGS_MS = 30.0
TARGET_MARK_MS = 50.0

DASHBOARD = """query Dashboard($studentId: ID!) { studentDashboard(studentId: $studentId) {
  studentId totalClasses presentDays absentDays sickDays leaveDays attendanceRate classAverage
  ranking classSize percentile trend standing lastUpdated statisticsCalculatedAt
  student { id name } } }"""
RANKINGS = """query Rankings($classroomId: ID!, $first: Int, $after: String) {
  classRankings(classroomId: $classroomId, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node {
      studentId rank totalStudents percentile attendanceRate lastCalculated student { id name }
} } } }"""
MARK = """mutation Mark($input: MarkAttendanceInput!) { markAttendance(input: $input) {
  records { id studentId classroomId date period status markedBy markedAt } } }"""
STATUSES = ("PRESENT", "PRESENT", "PRESENT", "PRESENT", "ABSENT", "SICK", "LEAVE")


@dataclass(frozen=True, slots=True)
class School:
    slug: str
    tenant_id: uuid.UUID
    classroom_id: uuid.UUID
    subject_ids: list[uuid.UUID]
    student_ids: list[uuid.UUID]

    @property
    def admin_email(self) -> str:
        return f"admin@{self.slug}.school"

    @property
    def teacher_email(self) -> str:
        return f"teacher@{self.slug}.school"


async def load_school(session_factory: SessionFactory, tenant_id: uuid.UUID) -> School:
    """The ids a benchmark needs of a seeded one-classroom school."""
    async with session_factory() as session:
        slug = await session.scalar(select(Tenant.slug).where(Tenant.id == tenant_id))
        classroom_id = await session.scalar(
            select(Classroom.id).where(Classroom.tenant_id == tenant_id)
        )
        subject_ids = list(
            await session.scalars(
                select(ClassroomSubject.subject_id)
                .where(ClassroomSubject.classroom_id == classroom_id)
                .order_by(ClassroomSubject.subject_id)
            )
        )
        student_ids = list(
            await session.scalars(
                select(Student.id).where(Student.classroom_id == classroom_id).order_by(Student.id)
            )
        )
    if slug is None or classroom_id is None or not subject_ids or not student_ids:
        raise BenchmarkError(f"seeded tenant {tenant_id} is incomplete")
    return School(slug, tenant_id, classroom_id, subject_ids, student_ids)


@dataclass(frozen=True, slots=True)
class Fixture:
    dashboard: School
    rankings: School
    seed_seconds: dict[str, float]
    today: date


async def seed(database_url: str, report: Report, *, vacuum: bool) -> Fixture:
    """Seed both schools (timed separately) and, unless told not to, VACUUM ANALYZE after."""
    engine = create_engine(database_url, pool_max=2)
    session_factory = create_session_factory(engine)
    today = datetime.now(UTC).date()
    timings: dict[str, float] = {}
    try:
        tenants: dict[str, uuid.UUID] = {}
        for prefix, students in (
            (DASHBOARD_PREFIX, DASHBOARD_STUDENTS),
            (RANKINGS_PREFIX, RANKINGS_STUDENTS),
        ):
            started = time.perf_counter()
            shape = {"schools": 1, "classes": 1, "students": students, "days": SEED_DAYS}
            (tenants[prefix],) = await seed_bulk(
                session_factory=session_factory,
                today=today,
                periods=DEMO_PERIODS,
                prefix=prefix,
                **shape,
            )
            label = f"seed_bulk {students:,} students x {SEED_DAYS} days x {DEMO_PERIODS} periods"
            timings[label] = time.perf_counter() - started
            report.say(f"  {label}: {timings[label]:.1f} s (incl. statistics refresh)")
        if vacuum:
            started = time.perf_counter()
            await execute_autocommit(database_url, "VACUUM (ANALYZE)")
            timings["VACUUM (ANALYZE)"] = time.perf_counter() - started
            report.say(f"  VACUUM (ANALYZE): {timings['VACUUM (ANALYZE)']:.1f} s")
        dashboard = await load_school(session_factory, tenants[DASHBOARD_PREFIX])
        rankings = await load_school(session_factory, tenants[RANKINGS_PREFIX])
    finally:
        await engine.dispose()
    return Fixture(dashboard=dashboard, rankings=rankings, seed_seconds=timings, today=today)


@dataclass
class Row:
    """One operation in one mode: its latencies against its p95 target (None: information)."""

    operation: str
    mode: str
    target_ms: float | None
    samples: Samples = field(default_factory=Samples)
    concurrent: bool = False

    @property
    def passed(self) -> bool | None:
        if self.samples.errors:
            return False
        if self.target_ms is None or not self.samples.latencies:
            return None
        return self.samples.p(95) < self.target_ms

    def cells(self) -> tuple[Cell, ...]:
        s = self.samples
        target = f"p95 < {self.target_ms:.0f} ms" if self.target_ms is not None else None
        figures = (len(s.latencies), s.mean, s.p(50), s.p(95), s.max)
        throughput = s.throughput if self.concurrent else None
        return (
            self.operation,
            self.mode,
            *figures,
            throughput,
            s.errors,
            target,
            verdict(self.passed),
        )


HEADER = [
    "operation",
    "mode",
    "n",
    "mean ms",
    "p50 ms",
    "p95 ms",
    "max ms",
    "req/s",
    "errors",
    "target",
    "result",
]
REQUESTS = {"req/s": "{:.0f}"}


@dataclass
class Plan:
    """Shared, deterministic inputs for every mode."""

    fixture: Fixture
    rng: random.Random
    new_periods: Iterator[tuple[date, int]]
    overwrite_periods: Iterator[tuple[date, int]]
    ranking_cursors: list[str] = field(default_factory=list)


def make_plan(fixture: Fixture, *, seed: int, modes: int, calls_per_mode: int) -> Plan:
    """Periods to mark: never-marked ones before the seeded month, and seeded ones to redo."""
    seeded_days = school_days(fixture.today, SEED_DAYS)
    needed_days = math.ceil(modes * calls_per_mode / DEMO_PERIODS) + 1
    earlier_days = school_days(seeded_days[0] - timedelta(days=1), needed_days)
    periods = range(1, DEMO_PERIODS + 1)
    return Plan(
        fixture=fixture,
        rng=random.Random(seed),
        new_periods=iter([(day, p) for day in reversed(earlier_days) for p in periods]),
        overwrite_periods=itertools.cycle([(day, p) for day in seeded_days for p in periods]),
    )


def dashboard_call(graphql: GraphQL, token: str, plan: Plan) -> Call:
    students = list(plan.fixture.dashboard.student_ids)
    plan.rng.shuffle(students)

    async def call(index: int) -> tuple[float, str | None]:
        student = str(students[index % len(students)])
        elapsed, data, error = await graphql.timed(DASHBOARD, {"studentId": student}, token)
        if error is None and (
            data is None
            or data["studentDashboard"]["studentId"] != student
            or data["studentDashboard"]["totalClasses"] < SEED_DAYS * DEMO_PERIODS
        ):
            error = f"unexpected dashboard for {student}: {data}"
        return elapsed, error

    return call


async def walk_rankings(graphql: GraphQL, token: str, school: School) -> tuple[list[str], float]:
    """Every page of the class's rankings; the end cursors, checked for order and totals."""
    cursors: list[str] = []
    after: str | None = None
    seen = 0
    last_rank = 0
    started = time.perf_counter()
    while True:
        variables = {"classroomId": str(school.classroom_id), "first": PAGE_SIZE, "after": after}
        _, data, error = await graphql.timed(RANKINGS, variables, token)
        if error is not None or data is None:
            raise BenchmarkError(f"classRankings walk failed: {error}")
        connection = data["classRankings"]
        for edge in connection["edges"]:
            if edge["node"]["rank"] < last_rank:
                raise BenchmarkError("classRankings is not ordered by rank")
            last_rank = edge["node"]["rank"]
        seen += len(connection["edges"])
        if connection["totalCount"] != len(school.student_ids):
            raise BenchmarkError(f"classRankings totalCount {connection['totalCount']}")
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
        cursors.append(after)
    if seen != len(school.student_ids):
        raise BenchmarkError(f"classRankings walk saw {seen} of {len(school.student_ids)}")
    return cursors, time.perf_counter() - started


def rankings_call(graphql: GraphQL, token: str, plan: Plan, *, deep: bool) -> Call:
    classroom = str(plan.fixture.rankings.classroom_id)
    deep_cursors = plan.ranking_cursors[DEEP_PAGE_FROM - 1 :]
    rng = random.Random(plan.rng.random())

    async def call(index: int) -> tuple[float, str | None]:
        after = rng.choice(deep_cursors) if deep else None
        variables = {"classroomId": classroom, "first": PAGE_SIZE, "after": after}
        elapsed, data, error = await graphql.timed(RANKINGS, variables, token)
        if error is None and (data is None or len(data["classRankings"]["edges"]) != PAGE_SIZE):
            error = f"unexpected rankings page: {str(data)[:200]}"
        return elapsed, error

    return call


def mark_call(graphql: GraphQL, token: str, plan: Plan, *, overwrite: bool) -> Call:
    school = plan.fixture.dashboard
    periods = plan.overwrite_periods if overwrite else plan.new_periods
    rng = random.Random(plan.rng.random())

    async def call(index: int) -> tuple[float, str | None]:
        day, period = next(periods)
        students = rng.sample(school.student_ids, MARKS_PER_CALL)
        marks = [{"studentId": str(s), "status": rng.choice(STATUSES)} for s in students]
        variables = {
            "input": {
                "classroomId": str(school.classroom_id),
                "date": day.isoformat(),
                "period": period,
                "subjectId": str(school.subject_ids[(period - 1) % len(school.subject_ids)]),
                "marks": marks,
            }
        }
        elapsed, data, error = await graphql.timed(MARK, variables, token)
        if error is None:
            records = (data or {}).get("markAttendance", {}).get("records", [])
            sent = [(m["studentId"], m["status"]) for m in marks]
            got = [(r["studentId"], r["status"]) for r in records]
            if got != sent:
                error = f"markAttendance returned {len(records)} records not matching the input"
        return elapsed, error

    return call


async def run_mode(
    mode: str, client: httpx.AsyncClient, plan: Plan, args: argparse.Namespace, report: Report
) -> list[Row]:
    """Every row of one mode, in a fixed order, saying each as it finishes."""
    graphql = GraphQL(client)
    fixture = plan.fixture
    admin = await graphql.login(fixture.dashboard.slug, fixture.dashboard.admin_email)
    ranking_admin = await graphql.login(fixture.rankings.slug, fixture.rankings.admin_email)
    teacher = await graphql.login(fixture.dashboard.slug, fixture.dashboard.teacher_email)

    def ranking_call(plan: Plan, *, deep: bool) -> Call:
        return rankings_call(graphql, ranking_admin, plan, deep=deep)

    def marks(*, overwrite: bool) -> Call:
        return mark_call(graphql, teacher, plan, overwrite=overwrite)

    if not plan.ranking_cursors:
        plan.ranking_cursors, seconds = await walk_rankings(
            graphql, ranking_admin, fixture.rankings
        )
        pages = len(plan.ranking_cursors) + 1
        report.say(f"  [{mode}] walked all {pages} classRankings pages in {seconds:.2f} s")
    dashboards, deep = dashboard_call(graphql, admin, plan), f"after p{DEEP_PAGE_FROM}+"
    jobs: list[tuple[str, float | None, Call]] = [
        ("studentDashboard (2,000-class)", TARGET_DASHBOARD_MS, dashboards),
        ("classRankings first page (5,000)", TARGET_RANKINGS_MS, ranking_call(plan, deep=False)),
        (f"classRankings deep page ({deep})", TARGET_RANKINGS_MS, ranking_call(plan, deep=True)),
        (f"markAttendance {MARKS_PER_CALL} (new period)", TARGET_MARK_MS, marks(overwrite=False)),
        (f"markAttendance {MARKS_PER_CALL} (overwrite)", TARGET_MARK_MS, marks(overwrite=True)),
    ]
    if args.concurrency > 0:
        jobs.append((f"studentDashboard x{args.concurrency} concurrent", None, dashboards))
    rows = []
    for operation, target, call in jobs:
        started = time.perf_counter()
        row = Row(operation, mode, target, concurrent=target is None)
        if row.concurrent:
            clients, requests = args.concurrency, args.concurrent_requests
            await run_concurrent(
                row.samples, call, clients=clients, requests=requests, warmup=args.warmup
            )
        else:
            await run_sequential(row.samples, call, warmup=args.warmup, iterations=args.iterations)
        spent = time.perf_counter() - started
        summary = row.samples.summary(throughput=row.concurrent)
        report.say(f"  [{mode}] {operation}: {summary} ({spent:.1f} s)")
        rows.append(row)
    return rows


async def measure_mode(
    mode: str, db: ScratchDatabase, plan: Plan, args: argparse.Namespace, report: Report
) -> list[Row]:
    """In-process (httpx's ASGI transport) or over HTTP (``rollcall serve`` in a subprocess)."""
    if mode == IN_PROCESS:
        app = create_app(db.settings)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                return await run_mode(mode, client, plan, args, report)
    limits = httpx.Limits(max_connections=max(args.concurrency, 1) + 5)
    async with (
        running_server(db.env) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=30.0, limits=limits) as client,
    ):
        return await run_mode(mode, client, plan, args, report)


async def forget_refreshes(redis_url: str, before: set[bytes]) -> None:
    """Remove the statistics refreshes markAttendance queued for a database about to vanish."""
    async with aioredis.Redis.from_url(redis_url) as redis:
        for job in set(await redis.zrange(default_queue_name, 0, -1)) - before:
            if job.decode().startswith("refresh_statistics:"):
                await redis.zrem(default_queue_name, job)
                await redis.delete(job_key_prefix + job.decode())


async def benchmark(args: argparse.Namespace, db: ScratchDatabase, report: Report) -> list[Row]:
    assert db.settings.database_url is not None
    report.say("seeding…")
    fixture = await seed(db.settings.database_url, report, vacuum=not args.no_vacuum)
    modes = [mode for mode in (IN_PROCESS, HTTP) if mode in args.modes]
    plan = make_plan(
        fixture, seed=args.seed, modes=len(modes), calls_per_mode=args.warmup + args.iterations
    )
    async with aioredis.Redis.from_url(db.redis_url) as redis:
        queued_before = set(await redis.zrange(default_queue_name, 0, -1))
    rows: list[Row] = []
    try:
        for mode in modes:
            report.say(f"measuring {mode}…")
            rows += await measure_mode(mode, db, plan, args, report)
    finally:
        await forget_refreshes(db.redis_url, queued_before)
    report.say("", "seed times (seed_bulk includes its materialized-view refresh):")
    for label, seconds in fixture.seed_seconds.items():
        report.figure(f"seed: {label}", seconds, f"  {label:<58} {seconds:7.1f} s")
    report.table("latency", HEADER, [row.cells() for row in rows], left=2, formats=REQUESTS)
    for row in rows:
        if row.passed is not None:
            detail = f"p95 {row.samples.p(95):.2f} ms"
            report.check(f"{row.operation} [{row.mode}]", row.passed, detail, say=False)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser(
        "foundation", "Latency of studentDashboard, classRankings and markAttendance."
    )
    arguments.add_argument("--iterations", type=int, default=300, help="timed calls per row")
    arguments.add_argument("--warmup", type=int, default=20, help="untimed calls before each row")
    arguments.add_argument(
        "--concurrency", type=int, default=20, help="clients for the dashboard throughput row"
    )
    arguments.add_argument(
        "--concurrent-requests", type=int, default=600, help="requests in the throughput row"
    )
    modes = (IN_PROCESS, HTTP)
    arguments.add_argument("--modes", nargs="+", choices=modes, default=modes, help="which modes")
    arguments.add_argument(
        "--no-vacuum", action="store_true", help="skip VACUUM (ANALYZE) after seeding"
    )
    arguments.add_argument("--seed", type=int, default=1, help="random seed for inputs")
    args = arguments.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0 or args.concurrency < 0:
        arguments.error("--iterations must be at least 1; --warmup and --concurrency not negative")
    report = Report("foundation", as_json=args.json)
    started = time.perf_counter()
    with scratch_database("foundation", redis_db=9, keep=args.keep) as db:
        report.say(
            f"rollcall foundation benchmark: {os.cpu_count()} CPUs, {args.iterations} iterations "
            f"after {args.warmup} warm-ups, database {db.name}"
        )
        rows = asyncio.run(benchmark(args, db, report))
    report.say(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    return report.finish(failed=any(row.samples.errors for row in rows), strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
