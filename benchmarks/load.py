"""School-morning load: logins, teachers marking, dashboard readers and live subscriptions at once,
against two API processes and one worker.

The scale report's baseline (300 logins, 50 teachers marking, 500 dashboard readers) run as one
mixed load for ``--seconds`` (default 60), with ``--subscribers`` live connections open
throughout. It creates a throwaway database seeded with ``seed_bulk`` (one school of 50 classes
x 10 students, 30 days x 6 periods) plus a user account for every student and one teacher per
class (``add_accounts``), FLUSHES its Redis database, and starts the stack itself: two
``rollcall serve`` processes and one ``rollcall worker``, all with ``ROLLCALL_RATE_LIMITS=off``
(500 readers polling from one address would otherwise be refused, which is the limits doing
their job, not a figure about capacity).

Clients, each one asyncio task of this process, alternate between the two API processes:

- 300 logins (students 1-300, the real argon2 check), their start times spread evenly over the
  run, as a school arrives (argon2 costs ~0.1-0.2 s of CPU a login here: 300 of them in 60 s
  are most of a core by themselves);
- 50 teachers, each marking its own class (10 students, today, periods 1-6 in turn) every
  ``--mark-interval`` seconds;
- 500 readers, one per student, each polling its own ``studentDashboard`` every
  ``--poll-interval`` seconds (tokens issued directly, so that only the 300 logins pay argon2)
  over a keep-alive connection of its own, as prepared bytes: httpx made this process, not the
  API, the limit of a run;
- ``--subscribers`` students holding a graphql-transport-ws connection with
  ``dashboardUpdated`` open (their dashboards are pushed after each mark of theirs).

It prints p50/p95/p99/max per operation, errors and error rate, throughput, the cache hit rate
(from each dashboard's ``extensions.freshness.cache`` and from both processes' ``/health/ready``
counters), events pushed, and the CPU each process used, then judges the target: 500 concurrent
clients on 2 API processes, p95 < 250 ms for every operation and no errors.

Everything runs on this machine: PostgreSQL, Redis, both API processes, the worker and this
load generator share its cores, so the figures are a floor, not a capacity.

Run from the repository root::

    .venv/bin/python -m benchmarks.load [--seconds 60] [--subscribers 200] [--keep]

A script, not a test: it exits 1 when a request failed (or, with ``--strict``, when the target
was missed). Redis is ``--redis-url`` (default ``ROLLCALL_REDIS_URL`` or
``redis://127.0.0.1:6379/14``), flushed at the start and, unless ``--keep``, at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ``python benchmarks/load.py`` finds the project packages

import httpx  # noqa: E402
import orjson  # noqa: E402
from sqlalchemy import insert, select, update  # noqa: E402

from benchmarks.cache import (  # noqa: E402
    Connection,
    cache_counters,
    cpu_seconds,
    flush_redis,
    graphql_request,
    machine_ticks,
    queued_seconds,
    run,
)
from benchmarks.foundation import (  # noqa: E402
    add_server_arguments,
    percentile,
    scratch_database,
)
from benchmarks.live import raise_open_files_limit  # noqa: E402
from rollcall.live_client import LiveClient  # noqa: E402
from rollcall.processes import ServerProcess, running_server, running_worker  # noqa: E402
from services.auth import Viewer, hash_password, issue_token  # noqa: E402
from services.bulk_seed import seed_bulk  # noqa: E402
from services.models import (  # noqa: E402
    Classroom,
    ClassroomSubject,
    Role,
    Student,
    TeacherAssignment,
    Tenant,
    User,
)
from services.platform.db import SessionFactory, create_engine, create_session_factory  # noqa: E402
from services.platform.settings import Settings  # noqa: E402
from services.seed import DEMO_PASSWORD, DEMO_PERIODS  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
PREFIX = "bench-load"
PROCESSES = 2
CLASSES = 50
STUDENTS_PER_CLASS = 10
SEED_DAYS = 30
LOGINS = 300
TOKEN_TTL_SECONDS = 8 * 3600
REQUEST_TIMEOUT = 30.0
TARGET_P95_MS = 250.0

LOGIN = """
mutation Login($tenant: String!, $email: String!, $password: String!) {
  login(tenant: $tenant, email: $email, password: $password) { token }
}
"""
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


class LoadError(RuntimeError):
    """The benchmark cannot go on (setup failed, a process did not start)."""


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
        classrooms = list(
            await session.scalars(
                select(Classroom.id)
                .where(Classroom.tenant_id == tenant_id)
                .order_by(Classroom.name)
            )
        )
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
            raise LoadError(f"seeded tenant {tenant_id} is incomplete")
        by_class: dict[uuid.UUID, list[uuid.UUID]] = {room: [] for room in classrooms}
        for student_id, classroom_id in rows:
            by_class[classroom_id].append(student_id)

        def user(email: str, role: Role) -> dict[str, Any]:
            return {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "email": email,
                "password_hash": password_hash,
                "role": role,
            }

        ordered = [student for room in classrooms for student in by_class[room]]
        student_users = [
            user(f"student{n}@{slug}.school", Role.STUDENT) for n in range(1, len(ordered) + 1)
        ]
        teacher_users = [
            user(f"teacher{n}@{slug}.school", Role.TEACHER) for n in range(1, len(classrooms) + 1)
        ]
        await session.execute(insert(User), student_users + teacher_users)
        await session.execute(
            update(Student),
            [
                {"id": student_id, "user_id": account["id"]}
                for student_id, account in zip(ordered, student_users, strict=True)
            ],
        )
        await session.execute(
            insert(TeacherAssignment),
            [
                {"tenant_id": tenant_id, "teacher_id": teacher["id"], "classroom_id": room}
                for teacher, room in zip(teacher_users, classrooms, strict=True)
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
            for row, room in zip(teacher_users, classrooms, strict=True)
        ],
        students=[
            (student_id, account(row, Role.STUDENT, student_id))
            for student_id, row in zip(ordered, student_users, strict=True)
        ],
    )


async def seed_school(
    settings: Settings, *, classes: int, students_per_class: int, days: int
) -> School:
    """One ``seed_bulk`` school with accounts for everyone (see ``add_accounts``)."""
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_max=2)
    try:
        session_factory = create_session_factory(engine)
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
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- processes


# --------------------------------------------------------------------------- figures


@dataclass
class Operation:
    """Latencies (ms) and failures of one operation over the run."""

    name: str
    samples: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def record(self, elapsed_ms: float, error: str | None) -> None:
        self.samples.append(elapsed_ms)
        if error is not None:
            self.errors += 1
            self.first_error = self.first_error or error

    def p(self, q: float) -> float:
        return percentile(self.samples, q) if self.samples else float("nan")

    @property
    def passed(self) -> bool:
        return self.errors == 0 and bool(self.samples) and self.p(95) < TARGET_P95_MS


@dataclass
class Tally:
    """Everything the clients saw."""

    login: Operation = field(default_factory=lambda: Operation("login"))
    mark: Operation = field(default_factory=lambda: Operation("markAttendance (10 students)"))
    dashboard: Operation = field(default_factory=lambda: Operation("studentDashboard"))
    cache: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("hits", "misses"), 0))
    subscriptions_open: int = 0
    subscription_failures: int = 0
    first_subscription_failure: str | None = None
    events: int = 0

    @property
    def operations(self) -> list[Operation]:
        return [self.login, self.mark, self.dashboard]

    def subscription_failed(self, reason: str) -> None:
        self.subscription_failures += 1
        self.first_subscription_failure = self.first_subscription_failure or reason


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
) -> tuple[float, dict[str, Any] | None, str | None]:
    """One GraphQL POST: (ms, the whole body or None, an error or None)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    started = time.perf_counter()
    try:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        elapsed = (time.perf_counter() - started) * 1000
        body = response.json()
    except (httpx.HTTPError, ValueError) as error:
        return (time.perf_counter() - started) * 1000, None, f"{type(error).__name__}: {error}"
    if response.status_code != 200 or body.get("errors"):
        first = (body.get("errors") or [{}])[0]
        code = (first.get("extensions") or {}).get("code", "?")
        return elapsed, body, f"HTTP {response.status_code} {code}: {first.get('message')}"
    return elapsed, body, None


# --------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class Plan:
    school: School
    clients: Sequence[httpx.AsyncClient]  # one per API process
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
    elapsed, body, error = await post(plan.clients[index % PROCESSES], LOGIN, variables)
    if error is None and not ((body or {}).get("data") or {}).get("login", {}).get("token"):
        error = "login answered without a token"
    tally.login.record(elapsed, error)


def mark_input(teacher: Teacher, today: date, period: int, rng: random.Random) -> dict[str, Any]:
    return {
        "classroomId": str(teacher.classroom_id),
        "date": today.isoformat(),
        "period": period,
        "subjectId": str(teacher.subject_ids[(period - 1) % len(teacher.subject_ids)]),
        "marks": [
            {"studentId": str(s), "status": rng.choice(STATUSES)} for s in teacher.student_ids
        ],
    }


async def teacher_client(plan: Plan, tally: Tally, index: int) -> None:
    teacher = plan.school.teachers[index]
    client = plan.clients[index % PROCESSES]
    rng = random.Random(plan.rng.random())
    today = datetime.now(UTC).date()
    next_at = plan.started + rng.uniform(0, plan.mark_interval)
    period = index % DEMO_PERIODS
    while next_at < plan.deadline:
        await sleep_until(next_at)
        period = period % DEMO_PERIODS + 1
        marks = mark_input(teacher, today, period, rng)
        elapsed, body, error = await post(client, MARK, {"input": marks}, teacher.account.token)
        if error is None:
            records = ((body or {}).get("data") or {}).get("markAttendance", {}).get("records", [])
            if len(records) != len(teacher.student_ids):
                error = f"markAttendance returned {len(records)} records"
        tally.mark.record(elapsed, error)
        next_at = plan.next_tick(next_at, plan.mark_interval)


async def reader_client(plan: Plan, tally: Tally, index: int) -> None:
    """A student polling their dashboard over one keep-alive connection of its own, sent as
    prepared bytes: the readers are most of the load, and httpx's CPU per request made this
    process, not the API, the limit of a run."""
    student_id, account = plan.school.students[index]
    host, port = plan.addresses[index % PROCESSES]
    connection = Connection(
        host, port, graphql_request(host, port, DASHBOARD, account.token, None), b""
    )
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
        partial = getattr(error, "partial", b"")
        if not reused or partial:
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


# --------------------------------------------------------------------------- run


@dataclass(frozen=True)
class CpuShares:
    """CPU over the run, in shares of one core, and the machine's busy share of all cores."""

    servers: list[float]
    servers_queued: list[float | None]  # share of the window each event loop waited for a core
    worker: float
    client: float
    machine: float
    load_average: float  # the machine's 1-minute load average at the end


async def measure(
    plan: Plan, tally: Tally, servers: Sequence[ServerProcess], worker_pid: int
) -> tuple[CpuShares, list[dict[str, int] | None], list[dict[str, int] | None]]:
    """Every client of the plan until its deadline; CPU and cache counters around them."""
    before = await asyncio.gather(*(cache_counters(c) for c in plan.clients))
    pids = [server.pid for server in servers]
    cpu_before = ([cpu_seconds(pid) for pid in pids], cpu_seconds(worker_pid), time.process_time())
    queued_before = [queued_seconds(pid) for pid in pids]
    ticks_before = machine_ticks()
    tasks = [
        login_client(plan, tally, index, plan.started + plan.seconds * index / plan.logins)
        for index in range(plan.logins)
    ]
    tasks += [teacher_client(plan, tally, index) for index in range(len(plan.school.teachers))]
    tasks += [reader_client(plan, tally, index) for index in range(len(plan.school.students))]
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - plan.started
    ticks_after = machine_ticks()
    cpu = CpuShares(
        servers=[
            (cpu_seconds(pid) - was) / wall * 100
            for pid, was in zip(pids, cpu_before[0], strict=True)
        ],
        servers_queued=[
            None if was is None or now is None else (now - was) / wall * 100
            for was, now in zip(queued_before, (queued_seconds(pid) for pid in pids), strict=True)
        ],
        worker=(cpu_seconds(worker_pid) - cpu_before[1]) / wall * 100,
        client=(time.process_time() - cpu_before[2]) / wall * 100,
        machine=(ticks_after[0] - ticks_before[0]) / max(ticks_after[1] - ticks_before[1], 1) * 100,
        load_average=os.getloadavg()[0],
    )
    after = await asyncio.gather(*(cache_counters(c) for c in plan.clients))
    return cpu, list(before), list(after)


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


def server_hit_rate(
    before: Sequence[dict[str, int] | None], after: Sequence[dict[str, int] | None]
) -> str:
    hits = lookups = 0
    for start, end in zip(before, after, strict=True):
        if start is None or end is None:
            return "not reported"
        delta = {name: end.get(name, 0) - start.get(name, 0) for name in end}
        hits += delta.get("hits", 0)
        lookups += delta.get("hits", 0) + delta.get("misses", 0) + delta.get("bypassed", 0)
    if not lookups:
        return "no lookups"
    return (
        f"{hits / lookups * 100:.1f} % of {lookups:,} lookups (both processes, every cached read)"
    )


def render(tally: Tally, seconds: float) -> str:
    header = ("operation", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "req/s", "errors", "err %")
    rows = [
        (
            op.name,
            str(len(op.samples)),
            f"{op.p(50):.1f}",
            f"{op.p(95):.1f}",
            f"{op.p(99):.1f}",
            f"{max(op.samples, default=float('nan')):.1f}",
            f"{len(op.samples) / seconds:.1f}",
            str(op.errors),
            f"{op.errors / len(op.samples) * 100:.2f}" if op.samples else "-",
        )
        for op in tally.operations
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


async def benchmark(
    args: argparse.Namespace, settings: Settings, env: Mapping[str, str]
) -> tuple[bool, bool]:
    """The whole run: whether every request succeeded, and whether the target was met."""
    assert settings.redis_url is not None
    started = time.perf_counter()
    school = await seed_school(
        settings, classes=args.classes, students_per_class=args.students_per_class, days=SEED_DAYS
    )
    print(
        f"seeded {len(school.students)} students with accounts in {len(school.teachers)} classes "
        f"x {SEED_DAYS} days x {DEMO_PERIODS} periods in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    await flush_redis(settings.redis_url)
    # The PostgreSQL server is shared (max_connections 100 by default): each process's pool
    # is kept small enough that the three of them fit beside everything else.
    env = {
        **env,
        "ROLLCALL_DB_POOL_MIN": str(args.db_pool_max),
        "ROLLCALL_DB_POOL_MAX": str(args.db_pool_max),
    }
    limits = httpx.Limits(max_connections=len(school.students) + len(school.teachers) + 50)
    try:
        async with contextlib.AsyncExitStack() as stack:
            servers = [
                await stack.enter_async_context(running_server(env)) for _ in range(PROCESSES)
            ]
            worker = await stack.enter_async_context(running_worker(env))
            clients = [
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=server.base_url, timeout=REQUEST_TIMEOUT, limits=limits
                    )
                )
                for server in servers
            ]
            print(
                f"stack: API pids {[s.pid for s in servers]} at {[s.base_url for s in servers]}, "
                f"worker pid {worker.pid}; {args.seconds:g} s of load…",
                flush=True,
            )
            tally = Tally()
            started = time.perf_counter()
            subscribers = [account for _, account in school.students[: args.subscribers]]
            async with open_subscriptions([s.ws_url for s in servers], subscribers, tally):
                print(
                    f"{tally.subscriptions_open} subscriptions open in "
                    f"{time.perf_counter() - started:.1f} s",
                    flush=True,
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
                cpu, before, after = await measure(plan, tally, servers, worker.pid)
            if worker.process.returncode is not None:
                print(f"the worker exited early:\n{worker.log_tail()}")
    finally:
        if not args.keep:
            await flush_redis(settings.redis_url)
    print()
    print(render(tally, args.seconds))
    requests = sum(len(op.samples) for op in tally.operations)
    errors = sum(op.errors for op in tally.operations)
    print()
    print(
        f"throughput: {requests / args.seconds:.0f} requests/s over {args.seconds:g} s; "
        f"errors {errors} of {requests} ({errors / max(requests, 1) * 100:.2f} %)"
    )
    lookups = tally.cache["hits"] + tally.cache["misses"]
    if lookups:
        print(
            f"cache hit rate (dashboards' extensions.freshness.cache): "
            f"{tally.cache['hits'] / lookups * 100:.1f} % of {lookups:,} lookups"
        )
    print(f"cache hit rate (/health/ready counters): {server_hit_rate(before, after)}")
    print(
        f"subscriptions: {tally.subscriptions_open} of {args.subscribers} open, "
        f"{tally.events:,} dashboards pushed, {tally.subscription_failures} failed"
        + (
            f" (first: {tally.first_subscription_failure})"
            if tally.first_subscription_failure
            else ""
        )
    )
    print(
        "CPU (100 % = one core): API processes "
        + " + ".join(f"{share:.0f} %" for share in cpu.servers)
        + f", worker {cpu.worker:.0f} %, this load generator {cpu.client:.0f} %; "
        f"machine {cpu.machine:.0f} % busy of {os.cpu_count()} cores "
        f"(PostgreSQL, Redis and anything else running), load average {cpu.load_average:.1f}"
    )
    if None not in cpu.servers_queued:
        print(
            "API event loops waited, runnable, for a core: "
            + " + ".join(f"{share:.0f} %" for share in cpu.servers_queued if share is not None)
            + " of the window"
        )
    for op in tally.operations:
        if op.first_error:
            print(f"first error of {op.name}: {op.first_error}")
    clients = len(school.students) + len(school.teachers)
    verdict = all(op.passed for op in tally.operations) and not tally.subscription_failures
    print()
    print(
        f"target: {clients} concurrent clients on {PROCESSES} API processes, p95 < "
        f"{TARGET_P95_MS:.0f} ms for every operation, 0 errors: {'PASS' if verdict else 'FAIL'}"
    )
    return errors == 0 and not tally.subscription_failures, verdict


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load",
        description="School-morning load on two API processes and a worker.",
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the load")
    parser.add_argument("--classes", type=int, default=CLASSES, help="classes, one teacher each")
    parser.add_argument(
        "--students-per-class", type=int, default=STUDENTS_PER_CLASS, help="readers per class"
    )
    parser.add_argument("--logins", type=int, default=LOGINS, help="logins spread over the run")
    parser.add_argument("--subscribers", type=int, default=200, help="live connections held")
    parser.add_argument(
        "--poll-interval", type=float, default=2.0, help="seconds between a reader's polls"
    )
    parser.add_argument(
        "--mark-interval", type=float, default=5.0, help="seconds between a teacher's marks"
    )
    add_server_arguments(parser, redis_default=DEFAULT_REDIS_URL)
    parser.add_argument(
        "--db-pool-max",
        type=int,
        default=15,
        help="ROLLCALL_DB_POOL_MAX of each API process and of the worker",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    parser.add_argument("--keep", action="store_true", help="keep the database (and Redis data)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 600 or min(args.poll_interval, args.mark_interval) <= 0:
        parser.error("--seconds must be 1-600; the intervals positive")
    if args.classes < 1 or args.students_per_class < 1 or args.db_pool_max < 2:
        parser.error("--classes and --students-per-class at least 1, --db-pool-max at least 2")
    if args.subscribers < 0 or args.logins < 0:
        parser.error("counts must not be negative")
    if args.subscribers > args.classes * args.students_per_class:
        parser.error("--subscribers cannot exceed the students")
    for url in (args.database_url, args.redis_url):
        if urlsplit(url).hostname not in {"127.0.0.1", "localhost", "::1"}:
            parser.error(f"loopback servers only: {url}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    soft, _ = raise_open_files_limit()
    # scratch_database reads the servers' addresses from the environment.
    os.environ["ROLLCALL_DATABASE_URL"] = args.database_url
    os.environ["ROLLCALL_REDIS_URL"] = args.redis_url
    started = time.perf_counter()
    with scratch_database(
        "rollcall_bench_load", redis_default=DEFAULT_REDIS_URL, keep=args.keep
    ) as db:
        print(
            f"rollcall load benchmark: {os.cpu_count()} CPUs, {PROCESSES} API processes + 1 "
            f"worker, ROLLCALL_RATE_LIMITS=off, open files limit {soft}, database {db.name}",
            flush=True,
        )
        succeeded, met = run(benchmark(args, db.settings, db.env))
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    return 0 if succeeded and (met or not args.strict) else 1


if __name__ == "__main__":
    sys.exit(main())
