"""Foundation latency benchmark: dashboards, rankings and marking, in-process and over HTTP.

Creates a throwaway database, seeds it with ``services.bulk_seed.seed_bulk`` (a 2,000-student class
for dashboards and marking, a 5,000-student class for rankings; 30 days x 6 periods each), then
times sequential GraphQL requests against ``graph.app.create_app`` through httpx's ASGI
transport and against ``rollcall serve`` over TCP, and prints p50/p95 against the targets.

Run from the repository root::

    .venv/bin/python -m benchmarks.foundation [--iterations 300] [--keep]

A script, not a test: it prints figures and exits 1 only when a request failed (or, with
``--strict``, when a target was missed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import logging
import math
import os
import random
import secrets
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ``python benchmarks/foundation.py`` finds the project packages

import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from arq.constants import default_queue_name, job_key_prefix  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402
from sqlalchemy import select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from graph.app import create_app  # noqa: E402
from rollcall.processes import running_server  # noqa: E402
from services.bulk_seed import seed_bulk  # noqa: E402
from services.models import Classroom, ClassroomSubject, Student, Tenant  # noqa: E402
from services.platform.db import SessionFactory, create_engine, create_session_factory, migrate  # noqa: E402
from services.platform.settings import Settings  # noqa: E402
from services.seed import DEMO_PASSWORD, DEMO_PERIODS, school_days  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
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

LOGIN = """
mutation Login($tenant: String!, $email: String!, $password: String!) {
  login(tenant: $tenant, email: $email, password: $password) { token user { role } }
}
"""

DASHBOARD = """
query Dashboard($studentId: ID!) {
  studentDashboard(studentId: $studentId) {
    studentId totalClasses presentDays absentDays sickDays leaveDays attendanceRate
    classAverage ranking classSize percentile trend standing lastUpdated
    statisticsCalculatedAt
    student { id name }
  }
}
"""

RANKINGS = """
query Rankings($classroomId: ID!, $first: Int, $after: String) {
  classRankings(classroomId: $classroomId, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges {
      cursor
      node {
        studentId rank totalStudents percentile attendanceRate lastCalculated
        student { id name }
      }
    }
  }
}
"""

MARK = """
mutation Mark($input: MarkAttendanceInput!) {
  markAttendance(input: $input) {
    records { id studentId classroomId date period status markedBy markedAt }
  }
}
"""

STATUSES = ("PRESENT", "PRESENT", "PRESENT", "PRESENT", "ABSENT", "SICK", "LEAVE")

logger = logging.getLogger("benchmarks.foundation")


class BenchmarkError(RuntimeError):
    """The benchmark itself cannot go on (setup failed, the server did not start)."""


# --------------------------------------------------------------------------- figures


@dataclass
class Measurement:
    """Latencies of one operation in one mode, in milliseconds, with any failures."""

    operation: str
    mode: str
    target_ms: float | None
    samples: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    throughput: float | None = None  # requests/s, for concurrent runs

    def record(self, elapsed_ms: float, error: str | None) -> None:
        self.samples.append(elapsed_ms)
        if error is not None:
            self.errors += 1
            self.first_error = self.first_error or error

    @property
    def passed(self) -> bool | None:
        """None when there is no target (informational rows)."""
        if self.errors:
            return False
        if self.target_ms is None or not self.samples:
            return None
        return percentile(self.samples, 95) < self.target_ms


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def summary(measurement: Measurement) -> str:
    samples = measurement.samples
    if not samples:
        return "no samples"
    line = (
        f"n={len(samples)} mean={sum(samples) / len(samples):.2f} ms "
        f"p50={percentile(samples, 50):.2f} ms p95={percentile(samples, 95):.2f} ms"
    )
    if measurement.throughput is not None:
        line += f" {measurement.throughput:.0f} req/s"
    if measurement.errors:
        line += f" ERRORS={measurement.errors} ({measurement.first_error})"
    return line


def render_table(measurements: Sequence[Measurement]) -> str:
    """The results as a fixed-width table, one row per operation and mode."""
    header = (
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
    )
    rows: list[tuple[str, ...]] = []
    for m in measurements:
        samples = m.samples or [math.nan]
        verdict = {True: "PASS", False: "FAIL", None: "info"}[m.passed]
        rows.append(
            (
                m.operation,
                m.mode,
                str(len(m.samples)),
                f"{sum(samples) / len(samples):.2f}",
                f"{percentile(samples, 50):.2f}",
                f"{percentile(samples, 95):.2f}",
                f"{max(samples):.2f}",
                f"{m.throughput:.0f}" if m.throughput is not None else "-",
                str(m.errors),
                f"p95 < {m.target_ms:.0f} ms" if m.target_ms is not None else "-",
                verdict,
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric = set(range(2, 9))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


# --------------------------------------------------------------------------- database


def database_url_named(server_url: str, name: str) -> str:
    """``server_url`` pointing at database ``name`` (password kept)."""
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def execute_autocommit(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    settings: Settings
    env: dict[str, str]


def add_server_arguments(parser: argparse.ArgumentParser, *, redis_default: str) -> None:
    """``--database-url`` and ``--redis-url`` of a benchmark that starts its own processes:
    the configured servers (``ROLLCALL_DATABASE_URL`` / ``ROLLCALL_REDIS_URL``) by default."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ROLLCALL_DATABASE_URL") or DEFAULT_DATABASE_URL,
        help="the PostgreSQL server (a scratch database is created on it and dropped after)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("ROLLCALL_REDIS_URL") or redis_default,
        help="a Redis database the benchmark may FLUSH (default: %(default)s)",
    )


@contextlib.contextmanager
def scratch_database(prefix: str, *, redis_default: str, keep: bool) -> Iterator[ScratchDatabase]:
    """A new, migrated database on the server of ``ROLLCALL_DATABASE_URL`` (dropped afterwards
    unless ``keep``), with settings and an environment for a ``rollcall`` subprocess."""
    server_url = os.environ.get("ROLLCALL_DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("ROLLCALL_REDIS_URL") or redis_default
    name = f"{prefix}_{secrets.token_hex(4)}"
    database_url = database_url_named(server_url, name)
    env = {
        **os.environ,
        "ROLLCALL_DATABASE_URL": database_url,
        "ROLLCALL_REDIS_URL": redis_url,
        "ROLLCALL_RATE_LIMITS": "off",
        # The load generator shares the machine: its CPU would make the API defer the very
        # work being measured (deeper ranking pages, exports).
        "ROLLCALL_DEGRADE_CPU_PERCENT": "100",
        "ROLLCALL_DEGRADE_MEMORY_PERCENT": "100",
    }
    settings = dataclasses.replace(
        Settings.from_env(env), database_url=database_url, redis_url=redis_url
    )
    asyncio.run(execute_autocommit(server_url, f'CREATE DATABASE "{name}"'))
    try:
        migrate(database_url)
        yield ScratchDatabase(name=name, settings=settings, env=env)
    finally:
        if keep:
            print(f"\nkept database {name}: {make_url(database_url)!r}")
        else:
            asyncio.run(
                execute_autocommit(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )


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


async def seed(database_url: str, *, vacuum: bool) -> Fixture:
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
            (tenants[prefix],) = await seed_bulk(
                session_factory=session_factory,
                today=today,
                schools=1,
                classes=1,
                students=students,
                days=SEED_DAYS,
                periods=DEMO_PERIODS,
                prefix=prefix,
            )
            label = f"seed_bulk {students:,} students x {SEED_DAYS} days x {DEMO_PERIODS} periods"
            timings[label] = time.perf_counter() - started
            print(f"  {label}: {timings[label]:.1f} s (incl. statistics refresh)", flush=True)
        if vacuum:
            started = time.perf_counter()
            await execute_autocommit(database_url, "VACUUM (ANALYZE)")
            timings["VACUUM (ANALYZE)"] = time.perf_counter() - started
            print(f"  VACUUM (ANALYZE): {timings['VACUUM (ANALYZE)']:.1f} s", flush=True)
        dashboard = await load_school(session_factory, tenants[DASHBOARD_PREFIX])
        rankings = await load_school(session_factory, tenants[RANKINGS_PREFIX])
    finally:
        await engine.dispose()
    return Fixture(dashboard=dashboard, rankings=rankings, seed_seconds=timings, today=today)


# --------------------------------------------------------------------------- GraphQL client


Call = Callable[[int], Awaitable[tuple[float, str | None]]]


class GraphQL:
    """POSTs to ``/graphql``; times only the round trip, not the JSON decoding after it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def timed(
        self, query: str, variables: dict[str, Any], token: str | None = None
    ) -> tuple[float, dict[str, Any] | None, str | None]:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        payload = {"query": query, "variables": variables}
        started = time.perf_counter()
        try:
            response = await self.client.post("/graphql", json=payload, headers=headers)
        except httpx.HTTPError as error:
            return (time.perf_counter() - started) * 1000, None, f"{type(error).__name__}: {error}"
        elapsed = (time.perf_counter() - started) * 1000
        try:
            body = response.json()
        except ValueError:
            return elapsed, None, f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code != 200 or body.get("errors"):
            errors = body.get("errors") or [{"message": response.text[:200]}]
            first = errors[0]
            code = (first.get("extensions") or {}).get("code", "?")
            return elapsed, body.get("data"), f"HTTP {response.status_code} {code}: {first}"
        return elapsed, body["data"], None

    async def login(self, tenant: str, email: str) -> str:
        _, data, error = await self.timed(
            LOGIN, {"tenant": tenant, "email": email, "password": DEMO_PASSWORD}
        )
        if error is not None or data is None:
            raise BenchmarkError(f"login as {email} failed: {error}")
        return str(data["login"]["token"])


async def run_sequential(
    measurement: Measurement, call: Call, *, warmup: int, iterations: int
) -> Measurement:
    """``warmup`` unrecorded calls (failures still count), then ``iterations`` timed ones."""
    for index in range(warmup):
        _, error = await call(index)
        if error is not None:
            measurement.errors += 1
            measurement.first_error = measurement.first_error or error
    for index in range(warmup, warmup + iterations):
        measurement.record(*await call(index))
    return measurement


async def run_concurrent(
    measurement: Measurement, call: Call, *, clients: int, requests: int, warmup: int
) -> Measurement:
    """``requests`` calls shared among ``clients`` concurrent workers; throughput in req/s."""
    await asyncio.gather(*(call(index) for index in range(min(warmup, clients))))
    counter = itertools.count()

    async def worker() -> None:
        while (index := next(counter)) < requests:
            measurement.record(*await call(index))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    measurement.throughput = requests / (time.perf_counter() - started)
    return measurement


# --------------------------------------------------------------------------- operations


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
    mode: str, client: httpx.AsyncClient, plan: Plan, args: argparse.Namespace
) -> list[Measurement]:
    """Every measurement of one mode, in a fixed order, printing each as it finishes."""
    graphql = GraphQL(client)
    fixture = plan.fixture
    admin = await graphql.login(f"{fixture.dashboard.slug}", fixture.dashboard.admin_email)
    ranking_admin = await graphql.login(fixture.rankings.slug, fixture.rankings.admin_email)
    teacher = await graphql.login(fixture.dashboard.slug, fixture.dashboard.teacher_email)
    if not plan.ranking_cursors:
        plan.ranking_cursors, seconds = await walk_rankings(
            graphql, ranking_admin, fixture.rankings
        )
        pages = len(plan.ranking_cursors) + 1
        print(f"  [{mode}] walked all {pages} classRankings pages in {seconds:.2f} s", flush=True)

    sequential = {"warmup": args.warmup, "iterations": args.iterations}
    jobs: list[tuple[Measurement, Call]] = [
        (
            Measurement("studentDashboard (2,000-class)", mode, TARGET_DASHBOARD_MS),
            dashboard_call(graphql, admin, plan),
        ),
        (
            Measurement("classRankings first page (5,000)", mode, TARGET_RANKINGS_MS),
            rankings_call(graphql, ranking_admin, plan, deep=False),
        ),
        (
            Measurement(
                f"classRankings deep page (after p{DEEP_PAGE_FROM}+)", mode, TARGET_RANKINGS_MS
            ),
            rankings_call(graphql, ranking_admin, plan, deep=True),
        ),
        (
            Measurement(f"markAttendance {MARKS_PER_CALL} (new period)", mode, TARGET_MARK_MS),
            mark_call(graphql, teacher, plan, overwrite=False),
        ),
        (
            Measurement(f"markAttendance {MARKS_PER_CALL} (overwrite)", mode, TARGET_MARK_MS),
            mark_call(graphql, teacher, plan, overwrite=True),
        ),
    ]
    results: list[Measurement] = []
    for measurement, call in jobs:
        started = time.perf_counter()
        await run_sequential(measurement, call, **sequential)
        results.append(measurement)
        spent = time.perf_counter() - started
        print(f"  [{mode}] {measurement.operation}: {summary(measurement)} ({spent:.1f} s)")
    if args.concurrency > 0:
        measurement = Measurement(
            f"studentDashboard x{args.concurrency} concurrent", mode, target_ms=None
        )
        started = time.perf_counter()
        await run_concurrent(
            measurement,
            dashboard_call(graphql, admin, plan),
            clients=args.concurrency,
            requests=args.concurrent_requests,
            warmup=args.warmup,
        )
        results.append(measurement)
        spent = time.perf_counter() - started
        print(f"  [{mode}] {measurement.operation}: {summary(measurement)} ({spent:.1f} s)")
    return results


# --------------------------------------------------------------------------- modes


async def in_process(settings: Settings, plan: Plan, args: argparse.Namespace) -> list[Measurement]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            return await run_mode(IN_PROCESS, client, plan, args)


async def over_http(env: dict[str, str], plan: Plan, args: argparse.Namespace) -> list[Measurement]:
    async with (
        running_server(env) as server,
        httpx.AsyncClient(
            base_url=server.base_url,
            timeout=30.0,
            limits=httpx.Limits(max_connections=max(args.concurrency, 1) + 5),
        ) as client,
    ):
        return await run_mode(HTTP, client, plan, args)


# --------------------------------------------------------------------------- main


async def queued_jobs(redis_url: str) -> set[str]:
    async with aioredis.Redis.from_url(redis_url) as redis:
        return {member.decode() for member in await redis.zrange(default_queue_name, 0, -1)}


async def forget_jobs(redis_url: str, job_ids: set[str]) -> None:
    """Remove the statistics refreshes markAttendance queued for a database about to vanish."""
    async with aioredis.Redis.from_url(redis_url) as redis:
        for job_id in job_ids:
            await redis.zrem(default_queue_name, job_id)
            await redis.delete(job_key_prefix + job_id)


async def benchmark(
    args: argparse.Namespace, settings: Settings, env: dict[str, str]
) -> list[Measurement]:
    assert settings.database_url is not None and settings.redis_url is not None
    print("seeding…", flush=True)
    fixture = await seed(settings.database_url, vacuum=not args.no_vacuum)
    modes = [mode for mode in (IN_PROCESS, HTTP) if mode in args.modes]
    plan = make_plan(
        fixture, seed=args.seed, modes=len(modes), calls_per_mode=args.warmup + args.iterations
    )
    jobs_before = await queued_jobs(settings.redis_url)
    results: list[Measurement] = []
    try:
        for mode in modes:
            print(f"measuring {mode}…", flush=True)
            if mode == IN_PROCESS:
                results += await in_process(settings, plan, args)
            else:
                results += await over_http(env, plan, args)
    finally:
        queued = await queued_jobs(settings.redis_url) - jobs_before
        await forget_jobs(
            settings.redis_url, {job for job in queued if job.startswith("refresh_statistics:")}
        )
    print()
    print("seed times (seed_bulk includes its materialized-view refresh):")
    for label, seconds in fixture.seed_seconds.items():
        print(f"  {label:<58} {seconds:7.1f} s")
    print()
    print(render_table(results))
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.foundation",
        description="Latency of studentDashboard, classRankings and markAttendance.",
    )
    parser.add_argument("--iterations", type=int, default=300, help="timed calls per row")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls before each row")
    parser.add_argument(
        "--concurrency", type=int, default=20, help="clients for the dashboard throughput row"
    )
    parser.add_argument(
        "--concurrent-requests", type=int, default=600, help="requests in the throughput row"
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=(IN_PROCESS, HTTP),
        default=[IN_PROCESS, HTTP],
        help="which modes to run",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--no-vacuum", action="store_true", help="skip VACUUM (ANALYZE) after seeding"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--seed", type=int, default=1, help="random seed for inputs")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0 or args.concurrency < 0:
        parser.error("--iterations must be at least 1; --warmup and --concurrency not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    with scratch_database("rollcall_bench", redis_default=DEFAULT_REDIS_URL, keep=args.keep) as db:
        print(
            f"rollcall foundation benchmark: {os.cpu_count()} CPUs, {args.iterations} iterations "
            f"after {args.warmup} warm-ups, database {db.name}"
        )
        results = asyncio.run(benchmark(args, db.settings, db.env))
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    failed_requests = any(m.errors for m in results)
    missed = any(m.passed is False for m in results)
    if failed_requests:
        print("some requests FAILED (see errors above)")
    return 1 if failed_requests or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
