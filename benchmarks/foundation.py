"""Latency of the hot paths (dashboards, rankings, marking), in-process, over HTTP and through
PgBouncer: see benchmarks/README.md."""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from benchmarks import harness
from benchmarks.harness import BenchmarkError, Call, Cell, GraphQL, Report, Timed
from graph.app import create_app
from services.models import ClassroomSubject, Role, Student, User
from services.platform.db import SessionFactory
from services.platform.settings import Settings
from services.seed import DEMO_PERIODS, school_days
from tests.servers import pgbouncer, pgbouncer_binary

SEED_DAYS = 30
MARKS_PER_CALL = 40
PAGE_SIZE = 50
DEEP_PAGE_FROM = 10  # "deep" pages start after the 10th page's cursor
MODES = ("in-process", "http", "pgbouncer")  # the last only when PgBouncer is installed
TARGET_DASHBOARD_MS, TARGET_RANKINGS_MS, TARGET_MARK_MS = 20.0, 30.0, 50.0

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
HEADER = ("operation", "mode", *harness.TIMED, "req/s", "errors", "target", "result")


@dataclass(frozen=True)
class School:
    """A seeded school of one classroom: the ids the requests use and its staff's tokens."""

    classroom_id: str
    subject_ids: list[str]
    student_ids: list[str]
    admin_token: str
    teacher_token: str


async def load_school(
    sessions: SessionFactory, settings: Settings, admin: User, student: Student
) -> School:
    """The ids and the staff's tokens of a seeded one-classroom school (``student``'s)."""
    async with sessions() as session:
        staff = User.tenant_id == admin.tenant_id, User.role == Role.TEACHER
        teacher = await session.scalar(select(User).where(*staff))
        of_tenant = select(Student.id).where(Student.tenant_id == admin.tenant_id)
        students = list(await session.scalars(of_tenant.order_by(Student.id)))
        taught = ClassroomSubject.classroom_id == student.classroom_id
        subjects = select(ClassroomSubject.subject_id).where(taught)
        subject_ids = list(await session.scalars(subjects.order_by(ClassroomSubject.subject_id)))
    if teacher is None or not subject_ids:
        raise BenchmarkError(f"seeded tenant {admin.tenant_id} is incomplete")
    tokens = harness.token_for(settings, admin), harness.token_for(settings, teacher)
    ids = [str(s) for s in subject_ids], [str(s) for s in students]
    return School(str(student.classroom_id), *ids, *tokens)


async def seed(
    db: harness.ScratchDatabase, report: Report, *, vacuum: bool
) -> tuple[list[School], dict[str, float]]:
    """Both schools (each seed timed) and, unless told not to, VACUUM ANALYZE after."""
    schools: list[School] = []
    seconds: dict[str, float] = {}
    async with harness.database_sessions(db.settings, pool_max=2) as sessions:
        for prefix, students in (("bench-dash", 2_000), ("bench-rank", 5_000)):
            started = time.perf_counter()
            shape = {"prefix": prefix, "students": students, "days": SEED_DAYS}
            admin, student = await harness.bulk_class(sessions, **shape)
            label = f"seed_bulk {students:,} students x {SEED_DAYS} days x {DEMO_PERIODS} periods"
            seconds[label] = time.perf_counter() - started
            report.say(f"  {label}: {seconds[label]:.1f} s (incl. statistics refresh)")
            schools.append(await load_school(sessions, db.settings, admin, student))
    if vacuum:
        started = time.perf_counter()
        assert db.settings.database_url is not None
        await harness.execute_autocommit(db.settings.database_url, "VACUUM (ANALYZE)")
        seconds["VACUUM (ANALYZE)"] = time.perf_counter() - started
        report.say(f"  VACUUM (ANALYZE): {seconds['VACUUM (ANALYZE)']:.1f} s")
    return schools, seconds


class Plan:
    """The inputs, shared by every mode: one random generator, the periods to mark (never-marked
    ones before the seeded month, and seeded ones to redo) and the rankings' cursors."""

    def __init__(self, dashboard: School, rankings: School, *, seed: int, calls: int) -> None:
        self.dashboard, self.rankings, self.rng = dashboard, rankings, random.Random(seed)
        seeded = school_days(datetime.now(UTC).date(), SEED_DAYS)
        earlier = school_days(seeded[0] - timedelta(days=1), math.ceil(calls / DEMO_PERIODS) + 1)
        periods = range(1, DEMO_PERIODS + 1)
        self.new_periods = iter([(day, p) for day in reversed(earlier) for p in periods])
        self.overwrite_periods = itertools.cycle([(day, p) for day in seeded for p in periods])
        self.cursors: list[str] = []


def dashboard_call(graphql: GraphQL, plan: Plan) -> Call:
    students = list(plan.dashboard.student_ids)
    plan.rng.shuffle(students)

    async def call(index: int) -> tuple[float, str | None]:
        student = students[index % len(students)]
        variables, token = {"studentId": student}, plan.dashboard.admin_token
        elapsed, data, error = await graphql.timed(DASHBOARD, variables, token)
        if error is None and (
            data is None
            or data["studentDashboard"]["studentId"] != student
            or data["studentDashboard"]["totalClasses"] < SEED_DAYS * DEMO_PERIODS
        ):
            error = f"unexpected dashboard for {student}: {data}"
        return elapsed, error

    return call


async def walk_rankings(graphql: GraphQL, school: School) -> tuple[list[str], float]:
    """Every page of the class's rankings; the end cursors, checked for order and totals."""
    cursors: list[str] = []
    after, seen, last_rank, started = None, 0, 0, time.perf_counter()
    while True:
        variables = {"classroomId": school.classroom_id, "first": PAGE_SIZE, "after": after}
        connection = (await graphql.data(RANKINGS, variables, school.admin_token))["classRankings"]
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


def rankings_call(graphql: GraphQL, plan: Plan, *, deep: bool) -> Call:
    deep_cursors, rng = plan.cursors[DEEP_PAGE_FROM - 1 :], random.Random(plan.rng.random())

    async def call(index: int) -> tuple[float, str | None]:
        after = rng.choice(deep_cursors) if deep else None
        variables = {"classroomId": plan.rankings.classroom_id, "first": PAGE_SIZE, "after": after}
        elapsed, data, error = await graphql.timed(RANKINGS, variables, plan.rankings.admin_token)
        if error is None and (data is None or len(data["classRankings"]["edges"]) != PAGE_SIZE):
            error = f"unexpected rankings page: {str(data)[:200]}"
        return elapsed, error

    return call


def mark_call(graphql: GraphQL, plan: Plan, *, overwrite: bool) -> Call:
    school, rng = plan.dashboard, random.Random(plan.rng.random())
    periods = plan.overwrite_periods if overwrite else plan.new_periods

    async def call(index: int) -> tuple[float, str | None]:
        day, period = next(periods)
        students = rng.sample(school.student_ids, MARKS_PER_CALL)
        marks = [{"studentId": s, "status": rng.choice(STATUSES)} for s in students]
        subject = school.subject_ids[(period - 1) % len(school.subject_ids)]
        where = {"classroomId": school.classroom_id, "subjectId": subject, "period": period}
        variables = {"input": {**where, "date": day.isoformat(), "marks": marks}}
        elapsed, data, error = await graphql.timed(MARK, variables, school.teacher_token)
        if error is None:
            records = (data or {}).get("markAttendance", {}).get("records", [])
            sent = [(m["studentId"], m["status"]) for m in marks]
            if [(r["studentId"], r["status"]) for r in records] != sent:
                error = f"markAttendance returned {len(records)} records not matching the input"
        return elapsed, error

    return call


async def run_mode(
    mode: str, graphql: GraphQL, plan: Plan, args: argparse.Namespace, report: Report
) -> list[Timed]:
    """Every row of one mode, in a fixed order, saying each as it finishes."""
    if not plan.cursors:
        plan.cursors, seconds = await walk_rankings(graphql, plan.rankings)
        pages = len(plan.cursors) + 1
        report.say(f"  [{mode}] walked all {pages} classRankings pages in {seconds:.2f} s")
    dashboards, deep = dashboard_call(graphql, plan), f"after p{DEEP_PAGE_FROM}+"
    ranks = functools.partial(rankings_call, graphql, plan)
    marks = functools.partial(mark_call, graphql, plan)
    rows: list[tuple[str, float | None, Call]] = [
        ("studentDashboard (2,000-class)", TARGET_DASHBOARD_MS, dashboards),
        ("classRankings first page (5,000)", TARGET_RANKINGS_MS, ranks(deep=False)),
        (f"classRankings deep page ({deep})", TARGET_RANKINGS_MS, ranks(deep=True)),
        (f"markAttendance {MARKS_PER_CALL} (new period)", TARGET_MARK_MS, marks(overwrite=False)),
        (f"markAttendance {MARKS_PER_CALL} (overwrite)", TARGET_MARK_MS, marks(overwrite=True)),
    ]
    if args.concurrency > 0:
        rows.append((f"studentDashboard x{args.concurrency} concurrent", None, dashboards))
    concurrent = {"clients": args.concurrency, "requests": args.concurrent_requests}
    measured = []
    for operation, target, call in rows:
        started, row = time.perf_counter(), Timed(operation, mode, target)
        if target is None:
            await harness.run_concurrent(row.samples, call, warmup=args.warmup, **concurrent)
        else:
            await harness.run_sequential(
                row.samples, call, warmup=args.warmup, iterations=args.iterations
            )
        summary = row.samples.summary(throughput=target is None)
        report.say(f"  [{mode}] {operation}: {summary} ({time.perf_counter() - started:.1f} s)")
        measured.append(row)
    return measured


async def through_pgbouncer(
    db: harness.ScratchDatabase, plan: Plan, args: argparse.Namespace, report: Report
) -> list[Timed]:
    """The HTTP mode with PgBouncer 1.18 in transaction mode between the API and PostgreSQL
    (10 server connections, ``ROLLCALL_DATABASE_POOLER=pgbouncer``)."""
    assert db.settings.database_url is not None
    with (
        tempfile.TemporaryDirectory() as directory,
        pgbouncer(Path(directory), db.settings.database_url, pool_size=10) as bounced,
    ):
        env = {**db.env, "ROLLCALL_DATABASE_URL": bounced, "ROLLCALL_DATABASE_POOLER": "pgbouncer"}
        async with harness.served(env) as (_, graphql):
            return await run_mode("pgbouncer", graphql, plan, args, report)


def cells(row: Timed) -> tuple[Cell, ...]:
    """A row of the latency table; only the concurrent row (no target) has a throughput."""
    target = row.target_ms
    goal = None if target is None else f"p95 < {target:.0f} ms"
    throughput = row.samples.throughput if target is None else None
    return (*row.cells(), throughput, row.samples.errors, goal, harness.verdict(row.passed))


async def benchmark(
    args: argparse.Namespace, db: harness.ScratchDatabase, report: Report
) -> list[Timed]:
    report.say("seeding…")
    (dashboard, rankings), seed_seconds = await seed(db, report, vacuum=not args.no_vacuum)
    modes = [mode for mode in MODES if mode in args.modes]
    calls = len(modes) * (args.warmup + args.iterations)
    plan, rows = Plan(dashboard, rankings, seed=args.seed, calls=calls), []
    for mode in modes:
        report.say(f"measuring {mode}…")
        if mode == "in-process":
            async with harness.in_process(create_app(db.settings)) as graphql:
                rows += await run_mode(mode, graphql, plan, args, report)
        elif mode == "http":
            async with harness.served(db.env) as (_, graphql):
                rows += await run_mode(mode, graphql, plan, args, report)
        elif pgbouncer_binary() is None:
            report.say("  PgBouncer is not installed (Debian's pgbouncer): not measured")
        else:
            rows += await through_pgbouncer(db, plan, args, report)
    report.say("", "seed times (seed_bulk includes its materialized-view refresh):")
    for label, seconds in seed_seconds.items():
        report.figure(f"seed: {label}", seconds, f"  {label:<58} {seconds:7.1f} s")
    report.table("latency", HEADER, [cells(r) for r in rows], left=2, formats={"req/s": "{:.0f}"})
    for row in rows:
        row.check(report)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    about = "Latency of studentDashboard, classRankings and markAttendance."
    arguments = harness.parser("foundation", about)
    add = arguments.add_argument
    add("--iterations", type=int, default=300, help="timed calls per row")
    add("--warmup", type=int, default=20, help="untimed calls before each row")
    add("--concurrency", type=int, default=20, help="clients of the dashboard throughput row")
    add("--concurrent-requests", type=int, default=600, help="requests of the throughput row")
    add("--modes", nargs="+", choices=MODES, default=MODES, help="which modes")
    add("--no-vacuum", action="store_true", help="skip VACUUM (ANALYZE) after seeding")
    add("--seed", type=int, default=1, help="random seed for inputs")
    args = arguments.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0 or args.concurrency < 0:
        arguments.error("--iterations must be at least 1; --warmup and --concurrency not negative")
    report = Report("foundation", as_json=args.json)
    with harness.scratch_database("foundation", redis_db=9, keep=args.keep) as db:
        report.say(
            f"rollcall foundation benchmark: {os.cpu_count()} CPUs, {args.iterations} iterations "
            f"after {args.warmup} warm-ups, database {db.name}"
        )
        rows = asyncio.run(benchmark(args, db, report))
    return report.finish(failed=any(row.samples.errors for row in rows), strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
