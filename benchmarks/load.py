"""School-morning load: logins, teachers marking, dashboard readers and live subscriptions at once,
against two API processes and one worker. What it does and how to read it: benchmarks/README.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy import insert, select, update

from benchmarks.harness import (
    DEFAULT_DATABASE_URL,
    LOGIN,
    REQUEST_TIMEOUT,
    BenchmarkError,
    Connection,
    CpuSnapshot,
    CpuUse,
    GraphQL,
    Report,
    Samples,
    cache_counters,
    database_sessions,
    graphql_request,
    parser,
    raise_open_files_limit,
    run,
    scratch_database,
)
from rollcall.live_client import LiveClient
from rollcall.processes import ServerProcess, running_server, running_worker
from services.auth import Viewer, hash_password, issue_token
from services.bulk_seed import seed_bulk
from services.models import (
    Classroom,
    ClassroomSubject,
    Role,
    Student,
    TeacherAssignment,
    Tenant,
    User,
)
from services.platform.db import SessionFactory
from services.platform.settings import Settings
from services.seed import DEMO_PASSWORD, DEMO_PERIODS

REDIS_DB = 14
PREFIX = "bench-load"
PROCESSES = 2
SEED_DAYS = 30
TOKEN_TTL_SECONDS = 8 * 3600
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


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Account:
    email: str
    token: str


@dataclass(frozen=True)
class Teacher:
    account: Account
    classroom_id: uuid.UUID
    subject_ids: list[uuid.UUID]
    student_ids: list[uuid.UUID]


@dataclass(frozen=True)
class School:
    slug: str
    tenant_id: uuid.UUID
    teachers: list[Teacher]
    students: list[tuple[uuid.UUID, Account]]  # student id, their account; class by class


async def add_accounts(
    session_factory: SessionFactory, tenant_id: uuid.UUID, *, jwt_secret: str
) -> School:
    """What ``seed_bulk`` leaves out: a login for every student (``student<n>@<slug>.school``)
    and a teacher per classroom (``teacher<n>@…``, teaching only that one), all with the demo
    password; tokens are issued here with the servers' secret."""
    password_hash = hash_password(DEMO_PASSWORD)  # one argon2 hash: the same password for all
    now = datetime.now(UTC)
    async with session_factory() as session, session.begin():
        slug = await session.scalar(select(Tenant.slug).where(Tenant.id == tenant_id))
        named = select(Classroom.id).where(Classroom.tenant_id == tenant_id)
        classrooms = list(await session.scalars(named.order_by(Classroom.name)))
        subjects = (
            await session.execute(
                select(ClassroomSubject.classroom_id, ClassroomSubject.subject_id).where(
                    ClassroomSubject.tenant_id == tenant_id
                )
            )
        ).all()
        rows = (
            await session.execute(
                select(Student.id, Student.classroom_id)
                .where(Student.tenant_id == tenant_id)
                .order_by(Student.name)
            )
        ).all()
        if slug is None or not classrooms or not rows:
            raise BenchmarkError(f"seeded tenant {tenant_id} is incomplete")
        by_class: dict[uuid.UUID, list[uuid.UUID]] = {room: [] for room in classrooms}
        for student_id, classroom_id in rows:
            by_class[classroom_id].append(student_id)

        def user(kind: str, n: int, role: Role) -> dict[str, Any]:
            email = f"{kind}{n}@{slug}.school"
            return {"id": uuid.uuid4(), "tenant_id": tenant_id, "email": email, "role": role}

        ordered = [student for room in classrooms for student in by_class[room]]
        students = [user("student", n + 1, Role.STUDENT) for n in range(len(ordered))]
        teachers = [user("teacher", n + 1, Role.TEACHER) for n in range(len(classrooms))]
        users = [{**u, "password_hash": password_hash} for u in students + teachers]
        await session.execute(insert(User), users)
        await session.execute(
            update(Student),
            [{"id": s, "user_id": u["id"]} for s, u in zip(ordered, students, strict=True)],
        )
        await session.execute(
            insert(TeacherAssignment),
            [
                {"tenant_id": tenant_id, "teacher_id": teacher["id"], "classroom_id": room}
                for teacher, room in zip(teachers, classrooms, strict=True)
            ],
        )

    def account(row: dict[str, Any], role: Role, student_id: uuid.UUID | None = None) -> Account:
        viewer = Viewer(user_id=row["id"], tenant_id=tenant_id, role=role, student_id=student_id)
        token = issue_token(viewer, secret=jwt_secret, ttl_seconds=TOKEN_TTL_SECONDS, now=now)
        return Account(email=row["email"], token=token)

    return School(
        slug=slug,
        tenant_id=tenant_id,
        teachers=[
            Teacher(
                account=account(row, Role.TEACHER),
                classroom_id=room,
                subject_ids=sorted(subject for c, subject in subjects if c == room),
                student_ids=by_class[room],
            )
            for row, room in zip(teachers, classrooms, strict=True)
        ],
        students=[
            (student_id, account(row, Role.STUDENT, student_id))
            for student_id, row in zip(ordered, students, strict=True)
        ],
    )


async def seed_school(
    settings: Settings, *, classes: int, students_per_class: int, days: int
) -> School:
    """One ``seed_bulk`` school with accounts for everyone (see ``add_accounts``)."""
    async with database_sessions(settings, pool_max=2) as session_factory:
        (tenant_id,) = await seed_bulk(
            session_factory=session_factory,
            today=datetime.now(UTC).date(),
            schools=1,
            classes=classes,
            students=students_per_class,
            days=days,
            prefix=PREFIX,
        )
        return await add_accounts(session_factory, tenant_id, jwt_secret=settings.jwt_secret)


def mark_input(
    teacher: Teacher, day: date, period: int, marks: Mapping[str, str]
) -> dict[str, Any]:
    """``markAttendance``'s input: the teacher's class, one period, ``marks`` (id → status)."""
    return {
        "classroomId": str(teacher.classroom_id),
        "date": day.isoformat(),
        "period": period,
        "subjectId": str(teacher.subject_ids[(period - 1) % len(teacher.subject_ids)]),
        "marks": [{"studentId": s, "status": status} for s, status in marks.items()],
    }


# --------------------------------------------------------------------------- clients


@dataclass
class Tally:
    """Everything the clients saw."""

    login: Samples = field(default_factory=Samples)
    mark: Samples = field(default_factory=Samples)
    dashboard: Samples = field(default_factory=Samples)
    cache: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("hits", "misses"), 0))
    subscriptions_open: int = 0
    subscription_failures: int = 0
    first_subscription_failure: str | None = None
    events: int = 0
    clients: int = 0  # students and teachers

    @property
    def operations(self) -> list[tuple[str, Samples]]:
        return [
            ("login", self.login),
            ("markAttendance (10 students)", self.mark),
            ("studentDashboard", self.dashboard),
        ]

    def subscription_failed(self, reason: str) -> None:
        self.subscription_failures += 1
        self.first_subscription_failure = self.first_subscription_failure or reason


@dataclass(frozen=True)
class Plan:
    school: School
    clients: Sequence[GraphQL]  # one per API process
    addresses: Sequence[tuple[str, int]]  # the same processes' host and port
    started: float
    seconds: float
    poll_interval: float
    mark_interval: float
    logins: int
    rng: random.Random

    @property
    def deadline(self) -> float:
        return self.started + self.seconds

    @staticmethod
    def next_tick(previous: float, interval: float) -> float:
        """The next request's time: on schedule, or at once when the last answer came late
        (a saturated stack then sees closed-loop clients, and the run still ends on time)."""
        return max(previous + interval, time.perf_counter())


async def sleep_until(moment: float) -> None:
    await asyncio.sleep(max(moment - time.perf_counter(), 0))


async def login_client(plan: Plan, tally: Tally, index: int, starts_at: float) -> None:
    await sleep_until(starts_at)
    _, account = plan.school.students[index]
    variables = {"tenant": plan.school.slug, "email": account.email, "password": DEMO_PASSWORD}
    elapsed, data, error = await plan.clients[index % PROCESSES].timed(LOGIN, variables)
    if error is None and not (data or {}).get("login", {}).get("token"):
        error = "login answered without a token"
    tally.login.record(elapsed, error)


async def teacher_client(plan: Plan, tally: Tally, index: int) -> None:
    teacher = plan.school.teachers[index]
    rng = random.Random(plan.rng.random())
    today = datetime.now(UTC).date()
    next_at = plan.started + rng.uniform(0, plan.mark_interval)
    period = index % DEMO_PERIODS
    while next_at < plan.deadline:
        await sleep_until(next_at)
        period = period % DEMO_PERIODS + 1
        marks = {str(s): rng.choice(STATUSES) for s in teacher.student_ids}
        variables = {"input": mark_input(teacher, today, period, marks)}
        token = teacher.account.token
        elapsed, data, error = await plan.clients[index % PROCESSES].timed(MARK, variables, token)
        records = ((data or {}).get("markAttendance") or {}).get("records", [])
        if error is None and len(records) != len(teacher.student_ids):
            error = f"markAttendance returned {len(records)} records"
        tally.mark.record(elapsed, error)
        next_at = plan.next_tick(next_at, plan.mark_interval)


async def reader_client(plan: Plan, tally: Tally, index: int) -> None:
    """A student polling their dashboard over one keep-alive connection of its own, sent as
    prepared bytes: the readers are most of the load, and httpx's CPU per request made this
    process, not the API, the limit of a run."""
    student_id, account = plan.school.students[index]
    host, port = plan.addresses[index % PROCESSES]
    request = graphql_request(host, port, DASHBOARD, account.token, None)
    connection = Connection(host, port, request, b"")
    next_at = plan.started + plan.rng.uniform(0, plan.poll_interval)
    try:
        while next_at < plan.deadline:
            await sleep_until(next_at)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status, raw = await ask(connection)
                error = dashboard_error(status, orjson.loads(raw), student_id, tally)
            except (OSError, EOFError, ValueError, TimeoutError, asyncio.LimitOverrunError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                await connection.close()
            tally.dashboard.record((time.perf_counter() - started) * 1000, error)
            next_at = plan.next_tick(next_at, plan.poll_interval)
    finally:
        await connection.close()


async def ask(connection: Connection) -> tuple[int, bytes]:
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


def dashboard_error(
    status: int, body: dict[str, Any], student_id: uuid.UUID, tally: Tally
) -> str | None:
    """What is wrong with one dashboard answer, if anything; its cache figures are tallied."""
    if status != 200 or body.get("errors"):
        first = (body.get("errors") or [{}])[0]
        code = (first.get("extensions") or {}).get("code", "?")
        return f"HTTP {status} {code}: {first.get('message')}"
    cache = (body.get("extensions") or {}).get("freshness", {}).get("cache", {})
    tally.cache["hits"] += cache.get("hits", 0)
    tally.cache["misses"] += cache.get("misses", 0) + cache.get("bypassed", 0)
    if (body.get("data") or {}).get("studentDashboard", {}).get("studentId") != str(student_id):
        return "studentDashboard of another student"
    return None


async def subscriber(
    ws_url: str, account: Account, tally: Tally, opened: asyncio.Event, stop: asyncio.Event
) -> None:
    """A dashboardUpdated subscription held until ``stop``; every push counted. ``opened`` is
    set once it is open or has failed."""
    try:
        async with LiveClient.connect(ws_url) as live:
            await live.init(account.token, within=30)
            operation = await live.subscribe(SUBSCRIPTION)
            await live.next(operation, within=30)  # the current dashboard comes first
            tally.subscriptions_open += 1
            opened.set()
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await live.next(operation, within=0.5)
                    tally.events += 1
    except Exception as error:  # a failed connection is a figure, not a crash
        tally.subscription_failed(f"{type(error).__name__}: {error}")
    finally:
        opened.set()


@contextlib.asynccontextmanager
async def open_subscriptions(
    ws_urls: Sequence[str], accounts: Sequence[Account], tally: Tally
) -> AsyncIterator[None]:
    """``accounts`` each holding a dashboardUpdated subscription, spread over ``ws_urls``,
    all open (or failed) on entry and closed on exit."""
    stop = asyncio.Event()
    openings = [asyncio.Event() for _ in accounts]
    holders = [
        asyncio.create_task(subscriber(ws_urls[index % len(ws_urls)], account, tally, opened, stop))
        for index, (account, opened) in enumerate(zip(accounts, openings, strict=True))
    ]
    try:
        await asyncio.gather(*(opened.wait() for opened in openings))
        yield
    finally:
        stop.set()
        await asyncio.gather(*holders)


# --------------------------------------------------------------------------- run


async def measure(
    plan: Plan, tally: Tally, pids: Sequence[int]
) -> tuple[CpuUse, dict[str, int] | None, dict[str, int] | None]:
    """Every client of the plan until its deadline; CPU (of ``pids``: the API processes, then
    the worker) and the API processes' cache counters around them."""
    https = [graphql.client for graphql in plan.clients]
    counters = await cache_counters(https)
    before = CpuSnapshot.take(pids)
    tasks = [
        login_client(plan, tally, index, plan.started + plan.seconds * index / plan.logins)
        for index in range(plan.logins)
    ]
    tasks += [teacher_client(plan, tally, index) for index in range(len(plan.school.teachers))]
    tasks += [reader_client(plan, tally, index) for index in range(len(plan.school.students))]
    await asyncio.gather(*tasks)
    cpu = CpuUse.between(before, CpuSnapshot.take(pids))
    return cpu, counters, await cache_counters(https)


def server_hit_rate(before: dict[str, int] | None, after: dict[str, int] | None) -> str:
    if before is None or after is None:
        return "not reported"
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    hits = delta.get("hits", 0)
    lookups = hits + delta.get("misses", 0) + delta.get("bypassed", 0)
    if not lookups:
        return "no lookups"
    return (
        f"{hits / lookups * 100:.1f} % of {lookups:,} lookups (both processes, every cached read)"
    )


def print_figures(
    report: Report, tally: Tally, args: argparse.Namespace, cpu: CpuUse, hit_rate: str
) -> bool:
    """The table, the lines after it and the target; whether every request succeeded."""
    header = ("operation", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "req/s", "errors", "err %")
    rows = [
        (
            name,
            len(op.latencies),
            op.p(50),
            op.p(95),
            op.p(99),
            op.max,
            len(op.latencies) / args.seconds,
            op.errors,
            op.errors / len(op.latencies) * 100 if op.latencies else None,
        )
        for name, op in tally.operations
    ]
    formats = {name: "{:.1f}" for name in header[2:7]} | {"err %": "{:.2f}"}
    report.table("operations", header, rows, formats=formats)
    requests = sum(len(op.latencies) for _, op in tally.operations)
    errors = sum(op.errors for _, op in tally.operations)
    report.say("")
    report.figure(
        "requests/s",
        requests / args.seconds,
        f"throughput: {requests / args.seconds:.0f} requests/s over {args.seconds:g} s; "
        f"errors {errors} of {requests} ({errors / max(requests, 1) * 100:.2f} %)",
    )
    if lookups := tally.cache["hits"] + tally.cache["misses"]:
        rate = tally.cache["hits"] / lookups * 100
        text = f"{rate:.1f} % of {lookups:,} lookups"
        report.figure(
            "dashboard cache hit %",
            rate,
            f"cache hit rate (dashboards' extensions.freshness.cache): {text}",
        )
    report.figure(
        "server cache hit rate", hit_rate, f"cache hit rate (/health/ready counters): {hit_rate}"
    )
    first = tally.first_subscription_failure
    report.figure(
        "dashboards pushed",
        tally.events,
        f"subscriptions: {tally.subscriptions_open} of {args.subscribers} open, "
        f"{tally.events:,} dashboards pushed, {tally.subscription_failures} failed"
        + (f" (first: {first})" if first else ""),
    )
    *apis, worker = cpu.servers
    load_average = os.getloadavg()[0]
    report.figure(
        "API CPU %",
        sum(apis),
        "CPU (100 % = one core): API processes "
        + " + ".join(f"{share:.0f} %" for share in apis)
        + f", worker {worker:.0f} %, this load generator {cpu.client:.0f} %; "
        f"machine {cpu.machine:.0f} % busy of {os.cpu_count()} cores "
        f"(PostgreSQL, Redis and anything else running), load average {load_average:.1f}",
    )
    if None not in (queued := cpu.queued[:-1]):
        report.say(
            "API event loops waited, runnable, for a core: "
            + " + ".join(f"{share:.0f} %" for share in queued if share is not None)
            + " of the window"
        )
    for name, op in tally.operations:
        if op.first_error:
            report.say(f"first error of {name}: {op.first_error}")
    met = not tally.subscription_failures and all(
        not op.errors and bool(op.latencies) and op.p(95) < TARGET_P95_MS
        for _, op in tally.operations
    )
    report.say("")
    target = f"{tally.clients} concurrent clients on {PROCESSES} API processes"
    detail = f"p95 < {TARGET_P95_MS:.0f} ms for every operation, 0 errors"
    report.check(f"target: {target}", met, detail)
    return errors == 0 and not tally.subscription_failures


async def benchmark(
    args: argparse.Namespace, settings: Settings, env: Mapping[str, str], report: Report
) -> bool:
    """The whole run; whether every request succeeded."""
    started = time.perf_counter()
    school = await seed_school(
        settings, classes=args.classes, students_per_class=args.students_per_class, days=SEED_DAYS
    )
    report.say(
        f"seeded {len(school.students)} students with accounts in {len(school.teachers)} classes "
        f"x {SEED_DAYS} days x {DEMO_PERIODS} periods in {time.perf_counter() - started:.1f} s"
    )
    # The PostgreSQL server is shared (max_connections 100 by default): each process's pool
    # is kept small enough that the three of them fit beside everything else.
    pool = str(args.db_pool_max)
    env = {**env, "ROLLCALL_DB_POOL_MIN": pool, "ROLLCALL_DB_POOL_MAX": pool}
    # Every client may hold a connection at once: a smaller httpx pool would queue requests
    # in this process and count the wait as the server's latency.
    limits = httpx.Limits(max_connections=len(school.students) + len(school.teachers) + 50)
    async with contextlib.AsyncExitStack() as stack:
        enter = stack.enter_async_context
        servers: list[ServerProcess] = [await enter(running_server(env)) for _ in range(PROCESSES)]
        worker = await enter(running_worker(env))
        clients = [
            GraphQL(
                await enter(
                    httpx.AsyncClient(base_url=s.base_url, timeout=REQUEST_TIMEOUT, limits=limits)
                )
            )
            for s in servers
        ]
        report.say(
            f"stack: API pids {[s.pid for s in servers]} at {[s.base_url for s in servers]}, "
            f"worker pid {worker.pid}; {args.seconds:g} s of load…"
        )
        tally = Tally(clients=len(school.students) + len(school.teachers))
        started = time.perf_counter()
        subscribers = [account for _, account in school.students[: args.subscribers]]
        async with open_subscriptions([s.ws_url for s in servers], subscribers, tally):
            report.say(
                f"{tally.subscriptions_open} subscriptions open in "
                f"{time.perf_counter() - started:.1f} s"
            )
            plan = Plan(
                school=school,
                clients=clients,
                addresses=[(server.host, server.port) for server in servers],
                started=time.perf_counter(),
                seconds=args.seconds,
                poll_interval=args.poll_interval,
                mark_interval=args.mark_interval,
                logins=min(args.logins, len(school.students)),
                rng=random.Random(args.seed),
            )
            pids = [*(s.pid for s in servers), worker.pid]
            cpu, before, after = await measure(plan, tally, pids)
        if worker.process.returncode is not None:
            report.say(f"the worker exited early:\n{worker.log_tail()}")
    return print_figures(report, tally, args, cpu, server_hit_rate(before, after))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    arguments = parser("load", "School-morning load on two API processes and a worker.")
    for flag, kind, default, text in (
        ("--seconds", float, 60.0, "length of the load"),
        ("--classes", int, 50, "classes, one teacher each"),
        ("--students-per-class", int, 10, "readers per class"),
        ("--logins", int, 300, "logins spread over the run"),
        ("--subscribers", int, 200, "live connections held"),
        ("--poll-interval", float, 2.0, "seconds between a reader's polls"),
        ("--mark-interval", float, 5.0, "seconds between a teacher's marks"),
        ("--db-pool-max", int, 15, "ROLLCALL_DB_POOL_MAX of each API process and of the worker"),
        ("--seed", int, 1, "random seed"),
    ):
        arguments.add_argument(flag, type=kind, default=default, help=text)
    args = arguments.parse_args(argv)
    if not 1 <= args.seconds <= 600 or min(args.poll_interval, args.mark_interval) <= 0:
        arguments.error("--seconds must be 1-600; the intervals positive")
    if args.classes < 1 or args.students_per_class < 1 or args.db_pool_max < 2:
        arguments.error("--classes and --students-per-class at least 1, --db-pool-max at least 2")
    if args.subscribers < 0 or args.logins < 0:
        arguments.error("counts must not be negative")
    if args.subscribers > args.classes * args.students_per_class:
        arguments.error("--subscribers cannot exceed the students")
    for url in (
        os.environ.get("ROLLCALL_DATABASE_URL") or DEFAULT_DATABASE_URL,
        os.environ.get("ROLLCALL_REDIS_URL") or "redis://127.0.0.1",
    ):
        if urlsplit(url).hostname not in {"127.0.0.1", "localhost", "::1"}:
            arguments.error(f"loopback servers only: {url}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report("load", as_json=args.json)
    soft, _ = raise_open_files_limit()
    started = time.perf_counter()
    with scratch_database("load", redis_db=REDIS_DB, keep=args.keep) as db:
        report.say(
            f"rollcall load benchmark: {os.cpu_count()} CPUs, {PROCESSES} API processes + 1 "
            f"worker, ROLLCALL_RATE_LIMITS=off, open files limit {soft}, {db.describe()}"
        )
        succeeded = run(benchmark(args, db.settings, db.env, report))
    report.say(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    return report.finish(failed=not succeeded, strict=args.strict)


if __name__ == "__main__":
    raise SystemExit(main())
