"""What every benchmark shares: a scratch stack, closed-loop clients, percentiles, one table
format and ``--json`` (the human text goes to stderr and one JSON document to stdout)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import resource
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager
from sqlalchemy import insert, make_url, select, text, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from starlette.types import ASGIApp

from rollcall.live_client import LiveClient
from rollcall.processes import ServerProcess, child_env, running_server
from services.auth import Viewer, hash_password, issue_token
from services.bulk_seed import seed_bulk
from services.models import ClassroomSubject, Role, Student, TeacherAssignment, Tenant, User
from services.platform.db import SessionFactory, create_engine, create_session_factory, migrate
from services.platform.settings import Settings
from services.seed import DEMO_PASSWORD, DEMO_PERIODS, seed_demo

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REQUEST_TIMEOUT = 30.0  # a connection with no answer this long after the window is an error
LOGIN = """mutation Login($tenant: String!, $email: String!, $password: String!) {
  login(tenant: $tenant, email: $email, password: $password) { token } }"""

Cell = str | int | float | None


class BenchmarkError(RuntimeError):
    """The benchmark itself cannot go on (setup failed, a server did not start)."""


# ------------------------------------------------------------------ figures, the command line


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100); NaN for no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(math.ceil(q / 100 * len(ordered)), 1) - 1]


@dataclass
class Samples:
    """Latencies (ms) of one stretch of requests, its failures and its wall time."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    seconds: float = 0.0

    def record(self, elapsed_ms: float, error: str | None = None) -> None:
        self.latencies.append(elapsed_ms)
        if error is not None:
            self.fail(error)

    def fail(self, error: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or error

    def absorb(self, other: Samples) -> None:
        """Count another stretch's failures (a warm-up's) but not its latencies."""
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else math.nan

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)

    @property
    def mean(self) -> float:
        return sum(self.latencies) / len(self.latencies) if self.latencies else math.nan

    @property
    def max(self) -> float:
        return max(self.latencies, default=math.nan)

    def summary(self, *, throughput: bool = False) -> str:
        """``n=… mean=… p50=… p95=…`` (and req/s, and the errors) on one line."""
        if not self.latencies:
            return "no samples"
        line = f"n={len(self.latencies)} mean={self.mean:.2f} ms p50={self.p(50):.2f} ms "
        line += f"p95={self.p(95):.2f} ms" + (f" {self.throughput:.0f} req/s" if throughput else "")
        return line + (f" ERRORS={self.errors} ({self.first_error})" if self.errors else "")


TIMED = ("n", "mean ms", "p50 ms", "p95 ms", "max ms")


@dataclass
class Timed:
    """One row of latencies, ``name`` in ``mode``, against a p95 target (None: information)."""

    name: str
    mode: str
    target_ms: float | None = None
    samples: Samples = field(default_factory=Samples)

    @property
    def passed(self) -> bool | None:
        """False after a failure; else whether p95 met the target (None: no target, no samples)."""
        if self.samples.errors:
            return False
        if self.target_ms is None or not self.samples.latencies:
            return None
        return self.samples.p(95) < self.target_ms

    def cells(self) -> tuple[Cell, ...]:
        """The name, the mode and the ``TIMED`` figures, for a table row."""
        s = self.samples
        return (self.name, self.mode, len(s.latencies), s.mean, s.p(50), s.p(95), s.max)

    def check(self, report: Report) -> None:
        """The target's check in ``report``, unsaid (a table shows it), when there is one."""
        if self.passed is not None:
            detail = f"p95 {self.samples.p(95):.2f} ms"
            report.check(f"{self.name} [{self.mode}]", self.passed, detail, say=False)


def verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "info"}[passed]


def cell_text(value: Cell, spec: str | None) -> str:
    """A figure as a table shows it: ``spec`` formats numbers; NaN is n/a, None a dash."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if spec is not None:
        return spec.format(value)
    return f"{value:.2f}" if isinstance(value, float) else f"{value:,}"


class Report:
    """What a benchmark measured: text, and with ``--json`` one JSON document of it on stdout."""

    def __init__(self, name: str, *, as_json: bool = False) -> None:
        self.as_json = as_json
        self.document: dict[str, Any] = {"benchmark": name, "tables": {}, "figures": {}}
        self.checks: list[dict[str, Any]] = []
        self.started = time.perf_counter()

    def say(self, *lines: str) -> None:
        print(*lines, sep="\n", file=sys.stderr if self.as_json else sys.stdout, flush=True)

    def table(
        self,
        title: str,
        header: Sequence[str],
        rows: Sequence[Sequence[Cell]],
        *,
        left: int = 1,
        formats: Mapping[str, str] | None = None,
    ) -> None:
        """A fixed-width table: the first ``left`` columns left-aligned, the rest right-aligned;
        ``formats`` maps a column to a format string for its values."""
        specs = [(formats or {}).get(name) for name in header]
        cells = [[cell_text(value, specs[i]) for i, value in enumerate(row)] for row in rows]
        widths = [max(len(line[i]) for line in [list(header), *cells]) for i in range(len(header))]

        def line(values: Sequence[str]) -> str:
            return "  ".join(
                value.ljust(widths[i]) if i < left else value.rjust(widths[i])
                for i, value in enumerate(values)
            ).rstrip()

        rule = "  ".join("-" * width for width in widths)
        self.say("", line(header), rule, *(line(row) for row in cells))
        self.document["tables"][title] = [dict(zip(header, row, strict=True)) for row in rows]

    def figure(self, name: str, value: Cell, text: str | None = None) -> None:
        self.document["figures"][name] = value
        if text is not None:
            self.say(text)

    def check(self, name: str, passed: bool, detail: str, *, say: bool = True) -> None:
        """A target met or missed (``say=False`` when a table already shows it)."""
        self.checks.append({"name": name, "passed": passed, "detail": detail})
        if say:
            self.say(f"  {name}: {detail}: {verdict(passed)}")

    def finish(self, *, failed: bool, strict: bool = False) -> int:
        """Print the JSON document when asked; the exit status: 1 when a request failed or,
        when ``strict``, a check did not pass."""
        missed = any(not check["passed"] for check in self.checks)
        self.say(f"\ntotal run time {time.perf_counter() - self.started:.0f} s")
        if failed:
            self.say("some requests FAILED (see errors above)")
        if self.as_json:
            document = {**self.document, "checks": self.checks, "failed": failed}
            print(json.dumps(document, indent=1, default=str), flush=True)
        return 1 if failed or (strict and missed) else 0


def parser(name: str, description: str, *, strict: bool = True) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--keep``, ``--json`` and (with targets) ``--strict``."""
    prog = f"python -m benchmarks.{name}"
    arguments = argparse.ArgumentParser(prog=prog, description=description)
    arguments.add_argument("--keep", action="store_true", help="keep the database and Redis data")
    arguments.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    if strict:
        arguments.add_argument("--strict", action="store_true", help="exit 1 on a missed target")
    return arguments


def run(coroutine: Awaitable[Any]) -> Any:
    """``asyncio.run`` on uvloop when installed (uvicorn[standard] brings it), so the load
    generator spends as little CPU per request as the server's own loop does."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    return uvloop.run(coroutine)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the stack


async def execute_autocommit(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def flush_redis(redis_url: str) -> None:
    async with aioredis.Redis.from_url(redis_url) as redis:
        await redis.flushdb()


@dataclass(frozen=True)
class ScratchDatabase:
    """What ``scratch_database`` made: the database, its settings, an environment for children."""

    name: str
    settings: Settings
    env: dict[str, str]

    @property
    def redis_url(self) -> str:
        assert self.settings.redis_url is not None
        return self.settings.redis_url

    def describe(self) -> str:
        return f"database {self.name}, Redis {self.redis_url} (flushed)"


@contextlib.contextmanager
def scratch_database(prefix: str, *, redis_db: int, keep: bool) -> Iterator[ScratchDatabase]:
    """A new, migrated database on the server of ``ROLLCALL_DATABASE_URL`` and a flushed Redis
    (``ROLLCALL_REDIS_URL`` or database ``redis_db``), both cleaned up after unless ``keep``."""
    server_url = os.environ.get("ROLLCALL_DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("ROLLCALL_REDIS_URL") or f"redis://127.0.0.1:6379/{redis_db}"
    name = f"rollcall_bench_{prefix}_{secrets.token_hex(4)}"
    database_url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
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
    settings = Settings.from_env(env)
    asyncio.run(execute_autocommit(server_url, f'CREATE DATABASE "{name}"'))
    asyncio.run(flush_redis(redis_url))
    try:
        migrate(database_url)
        yield ScratchDatabase(name=name, settings=settings, env=env)
    finally:
        if keep:
            print(f"\nkept database {name}: {make_url(database_url)!r}", file=sys.stderr)
        else:
            asyncio.run(flush_redis(redis_url))
            drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            asyncio.run(execute_autocommit(server_url, drop))


@contextlib.asynccontextmanager
async def database_sessions(
    settings: Settings, *, pool_max: int = 4
) -> AsyncIterator[SessionFactory]:
    """Sessions on the scratch database until the block ends (the engine disposed after)."""
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_max=pool_max)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def seed_demo_school(settings: Settings) -> float:
    """The demo tenant (``services.seed.seed_demo``) in the scratch database; seconds taken."""
    async with database_sessions(settings, pool_max=2) as sessions:
        started = time.perf_counter()
        await seed_demo(session_factory=sessions, today=datetime.now(UTC).date())
    return time.perf_counter() - started


async def bulk_class(
    session_factory: SessionFactory, *, prefix: str, students: int, days: int
) -> tuple[User, Student]:
    """One school of one class (``services.bulk_seed.seed_bulk``); its admin and a student."""
    [tenant_id] = await seed_bulk(
        session_factory=session_factory,
        today=datetime.now(UTC).date(),
        schools=1,
        classes=1,
        students=students,
        days=days,
        prefix=prefix,
    )
    async with session_factory() as session:
        admin = await session.scalar(
            select(User).where(User.tenant_id == tenant_id, User.role == Role.ADMIN)
        )
        student = await session.scalar(select(Student).where(Student.tenant_id == tenant_id))
    assert admin is not None and student is not None
    return admin, student


def token_for(settings: Settings, user: User) -> str:
    """An hour's bearer token of ``user``, issued directly: a login would cost an argon2 check."""
    viewer = Viewer(user_id=user.id, tenant_id=user.tenant_id, role=user.role)
    return issue_token(viewer, secret=settings.jwt_secret, ttl_seconds=3600, now=datetime.now(UTC))


@dataclass(frozen=True)
class Teacher:
    token: str
    classroom_id: uuid.UUID
    subject_ids: list[uuid.UUID]
    student_ids: list[uuid.UUID]


@dataclass(frozen=True)
class School:
    """``seed_school``'s: a teacher per classroom and each student's (id, token), class by class."""

    slug: str
    tenant_id: uuid.UUID
    teachers: list[Teacher]
    students: list[tuple[uuid.UUID, str]]

    def email(self, index: int) -> str:
        """The login of ``students[index]``."""
        return f"student{index + 1}@{self.slug}.school"


async def seed_school(
    settings: Settings,
    *,
    classes: int,
    students_per_class: int,
    days: int,
    periods: int = DEMO_PERIODS,
) -> School:
    """One ``seed_bulk`` school and what it leaves out: a user for every student and a teacher
    per classroom (``student<n>@<slug>.school``, ``teacher<n>@…``), with their tokens."""
    async with database_sessions(settings, pool_max=2) as sessions:
        [tenant_id] = await seed_bulk(
            session_factory=sessions,
            today=datetime.now(UTC).date(),
            schools=1,
            classes=classes,
            students=students_per_class,
            days=days,
            periods=periods,
            prefix="bench",
        )
        async with sessions() as session, session.begin():
            slug = await session.scalar(select(Tenant.slug).where(Tenant.id == tenant_id))
            taught = select(ClassroomSubject.classroom_id, ClassroomSubject.subject_id)
            taught = taught.where(ClassroomSubject.tenant_id == tenant_id)
            subjects = (await session.execute(taught)).all()
            # Names are "<classroom> Student <n>": their order is class by class.
            named = select(Student.id, Student.classroom_id).where(Student.tenant_id == tenant_id)
            students = (await session.execute(named.order_by(Student.name))).all()
            by_class: dict[uuid.UUID, list[uuid.UUID]] = {}
            for student_id, classroom_id in students:
                by_class.setdefault(classroom_id, []).append(student_id)
            password_hash = hash_password(DEMO_PASSWORD)  # one argon2 hash for everyone
            student_users = [uuid.uuid4() for _ in students]
            teacher_users = [uuid.uuid4() for _ in by_class]
            users = [(u, f"student{n + 1}", Role.STUDENT) for n, u in enumerate(student_users)]
            users += [(u, f"teacher{n + 1}", Role.TEACHER) for n, u in enumerate(teacher_users)]
            await session.execute(
                insert(User),
                [
                    {"id": u, "tenant_id": tenant_id, "email": f"{name}@{slug}.school"}
                    | {"role": role, "password_hash": password_hash}
                    for u, name, role in users
                ],
            )
            await session.execute(
                update(Student),
                [
                    {"id": s, "user_id": u}
                    for (s, _), u in zip(students, student_users, strict=True)
                ],
            )
            await session.execute(
                insert(TeacherAssignment),
                [
                    {"tenant_id": tenant_id, "teacher_id": teacher, "classroom_id": room}
                    for teacher, room in zip(teacher_users, by_class, strict=True)
                ],
            )
    if slug is None or not students:
        raise BenchmarkError(f"seeded tenant {tenant_id} is incomplete")
    now = datetime.now(UTC)

    def token(user_id: uuid.UUID, role: Role, student_id: uuid.UUID | None = None) -> str:
        viewer = Viewer(user_id=user_id, tenant_id=tenant_id, role=role, student_id=student_id)
        return issue_token(viewer, secret=settings.jwt_secret, ttl_seconds=8 * 3600, now=now)

    teachers = [
        Teacher(
            token(teacher, Role.TEACHER),
            room,
            sorted(subject for c, subject in subjects if c == room),
            by_class[room],
        )
        for teacher, room in zip(teacher_users, by_class, strict=True)
    ]
    tokens = [
        (s, token(u, Role.STUDENT, s)) for (s, _), u in zip(students, student_users, strict=True)
    ]
    return School(slug, tenant_id, teachers, tokens)


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


def server_env(settings: Settings) -> dict[str, str]:
    """An environment for children with none of this one's ``ROLLCALL_*`` but the scratch
    database, Redis and JWT secret; rate limits off, as many websockets per address as allowed
    awaiting ``connection_init`` (all of them come from here)."""
    assert settings.database_url is not None and settings.redis_url is not None
    return child_env(
        ROLLCALL_DATABASE_URL=settings.database_url,
        ROLLCALL_REDIS_URL=settings.redis_url,
        ROLLCALL_JWT_SECRET=settings.jwt_secret,
        ROLLCALL_RATE_LIMITS="off",
        ROLLCALL_WS_UNAUTHENTICATED_PER_ADDRESS="10000",  # the most the API allows
    )


def log_problems(server: ServerProcess) -> list[str]:
    """Lines of the server's log that report a warning, an error or a traceback."""
    words = ("WARNING", "ERROR", "CRITICAL", "Traceback", "Exception")
    text = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    return [line for line in text.splitlines() if any(word in line for word in words)]


@contextlib.asynccontextmanager
async def served(
    env: Mapping[str, str], *, limits: httpx.Limits | None = None
) -> AsyncIterator[tuple[ServerProcess, GraphQL]]:
    """``rollcall serve`` in a subprocess and a GraphQL client of it (``limits``: its httpx
    pool, httpx's default when None), until the block ends."""
    pool = {} if limits is None else {"limits": limits}
    async with (
        running_server(env) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=REQUEST_TIMEOUT, **pool) as client,
    ):
        yield server, GraphQL(client)


@contextlib.asynccontextmanager
async def api_processes(
    env: Mapping[str, str], count: int, *, limits: httpx.Limits | None = None
) -> AsyncIterator[list[tuple[ServerProcess, GraphQL]]]:
    """``count`` of ``served`` started at once (``limits``: each client's httpx pool, unlimited
    when None), until the block ends."""
    pool = limits or httpx.Limits()
    async with contextlib.AsyncExitStack() as stack:
        starting = (stack.enter_async_context(served(env, limits=pool)) for _ in range(count))
        yield list(await asyncio.gather(*starting))


@contextlib.asynccontextmanager
async def in_process(app: ASGIApp) -> AsyncIterator[GraphQL]:
    """The ASGI ``app`` started (its lifespan) and a GraphQL client of it through httpx's ASGI
    transport: no sockets and no other process, so only the app's own work is timed."""
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://bench"
        ) as client,
    ):
        yield GraphQL(client)


# --------------------------------------------------------------------------- clients


class GraphQL:
    """POSTs to ``/graphql``; times only the round trip, not the JSON decoding after it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def timed(
        self, query: str, variables: Mapping[str, Any] | None = None, token: str | None = None
    ) -> tuple[float, dict[str, Any] | None, str | None]:
        """(milliseconds, data, an error message or None)."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        payload = {"query": query, "variables": dict(variables or {})}
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
            first = (body.get("errors") or [{"message": response.text[:200]}])[0]
            code = (first.get("extensions") or {}).get("code", "?")
            return elapsed, body.get("data"), f"HTTP {response.status_code} {code}: {first}"
        return elapsed, body["data"], None

    async def data(
        self, query: str, variables: Mapping[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """The answer's data; BenchmarkError for any error."""
        _, data, error = await self.timed(query, variables, token)
        if error is not None or data is None:
            raise BenchmarkError(f"{query.split('(')[0][:60]} failed: {error}")
        return data

    async def login(self, tenant: str, email: str) -> str:
        """A token of ``email``, logged in with the demo password."""
        data = await self.data(LOGIN, {"tenant": tenant, "email": email, "password": DEMO_PASSWORD})
        return str(data["login"]["token"])


Call = Callable[[int], Awaitable[tuple[float, str | None]]]


def query_call(
    graphql: GraphQL,
    query: str,
    variables: Mapping[str, Any] | None = None,
    token: str | None = None,
) -> Call:
    """The same request over and over, as ``run_sequential`` and ``run_concurrent`` call it."""

    async def call(_: int) -> tuple[float, str | None]:
        elapsed, _data, error = await graphql.timed(query, variables, token)
        return elapsed, error

    return call


async def run_sequential(samples: Samples, call: Call, *, warmup: int, iterations: int) -> Samples:
    """``warmup`` unrecorded calls (their failures still count), then ``iterations`` timed."""
    for index in range(warmup):
        _, error = await call(index)
        if error is not None:
            samples.fail(error)
    started = time.perf_counter()
    for index in range(warmup, warmup + iterations):
        samples.record(*await call(index))
    samples.seconds = time.perf_counter() - started
    return samples


async def run_concurrent(
    samples: Samples, call: Call, *, clients: int, requests: int, warmup: int
) -> Samples:
    """``requests`` calls shared among ``clients`` concurrent workers (a closed loop)."""
    await asyncio.gather(*(call(index) for index in range(min(warmup, clients))))
    counter = itertools.count()

    async def worker() -> None:
        while (index := next(counter)) < requests:
            samples.record(*await call(index))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    samples.seconds = time.perf_counter() - started
    return samples


class Connection:
    """One raw HTTP/1.1 keep-alive connection sending a pre-built request over and over: httpx
    costs too much CPU per request to keep a uvicorn worker busy from the same machine."""

    def __init__(self, host: str, port: int, request: bytes, expect: bytes) -> None:
        self.host, self.port, self.request, self.expect = host, port, request, expect
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def answer(self) -> tuple[int, bytes]:
        """The status and body of one exchange; ValueError for an answer without a length."""
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
        """One request and its whole answer: an error message, or None when fine."""
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


def graphql_request(
    host: str, port: int, query: str, token: str, operation: str | None, variables: Any = None
) -> bytes:
    """The bytes of a POST /graphql request, for ``Connection``."""
    payload: dict[str, Any] = {"query": query}
    if operation is not None:
        payload.update(operationName=operation, variables=variables or {})
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        f"POST /graphql HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def drive(connections: Sequence[Connection], seconds: float) -> Samples:
    """Every connection sends request after request for ``seconds``; requests started by then
    are finished and counted (``seconds`` of the result: from the start to the last answer)."""
    samples = Samples()
    clock = time.perf_counter
    started = clock()
    stop = started + seconds

    async def loop(connection: Connection) -> None:
        while (sent := clock()) < stop:
            try:
                error = await connection.exchange()
            except (OSError, EOFError, ValueError, asyncio.LimitOverrunError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                await connection.close()
                await asyncio.sleep(0.01)  # do not spin on a server that refuses connections
            samples.record((clock() - sent) * 1000, error)

    tasks = [asyncio.ensure_future(loop(connection)) for connection in connections]
    _, pending = await asyncio.wait(tasks, timeout=seconds + REQUEST_TIMEOUT)
    for task in pending:
        task.cancel()
        samples.fail(f"no answer within {REQUEST_TIMEOUT:.0f} s of the end")
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            samples.fail(f"load generator failed: {task.exception()!r}")
    samples.seconds = clock() - started
    return samples


@dataclass
class Subscription:
    """One graphql-transport-ws connection (``rollcall.live_client``) holding one subscription."""

    url: str
    token: str
    client: LiveClient | None = None
    operation: str = ""
    seconds: float = math.nan  # to connect, initialise and subscribe
    error: str | None = None  # why it failed
    initial: bool = False  # the subscription's first result is the current value, not an event

    @property
    def dropped(self) -> bool:
        """The server closed this connection."""
        return self.client is not None and self.client.closed.done()

    async def hold(
        self, query: str, gate: asyncio.Semaphore, opened: asyncio.Event, stop: asyncio.Event
    ) -> None:
        """Connect, initialise, subscribe (and take the first result if ``initial``), then
        stay open until ``stop``."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                async with gate:
                    started = time.perf_counter()
                    client = await stack.enter_async_context(LiveClient.connect(self.url))
                    await client.init(self.token, within=30)
                    self.operation = await client.subscribe(query)
                    if self.initial:
                        await client.next(self.operation, within=30)
                    self.client, self.seconds = client, time.perf_counter() - started
                opened.set()
                await stop.wait()
        except Exception as error:  # a failed connection is a figure, not a crash
            self.error = f"{type(error).__name__}: {error}"
        finally:
            opened.set()


@contextlib.asynccontextmanager
async def holding(
    subscriptions: Sequence[Subscription], query: str, *, concurrency: int
) -> AsyncIterator[None]:
    """Each of ``subscriptions`` subscribed to ``query`` (``concurrency`` connecting at a
    time), all open or failed on entry; closed when the block ends."""
    gate, stop = asyncio.Semaphore(concurrency), asyncio.Event()
    openings = [asyncio.Event() for _ in subscriptions]
    holders = [
        asyncio.create_task(s.hold(query, gate, opened, stop))
        for s, opened in zip(subscriptions, openings, strict=True)
    ]
    try:
        await asyncio.gather(*(opened.wait() for opened in openings))
        yield
    finally:
        stop.set()
        await asyncio.gather(*holders, return_exceptions=True)


# --------------------------------------------------------------------------- processes


def status_kb(pid: int | str = "self") -> dict[str, int]:
    """The ``Vm*`` lines of ``/proc/<pid>/status`` (VmRSS, VmHWM, …), in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Vm"):
            name, _, value = line.partition(":")
            found[name] = int(value.split()[0])
    return found


def resident_mb(pid: int | str = "self") -> float:
    return status_kb(pid).get("VmRSS", math.nan) / 1024


def reset_peak(pid: int | str = "self") -> bool:
    """VmHWM back to the current RSS (Linux 4.0+), so a peak is the next step's own."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def idle_rss_kb(pid: int) -> int:
    """A process's VmRSS after a second of quiet (the median of five readings)."""
    await asyncio.sleep(1.0)
    readings = []
    for _ in range(5):
        readings.append(status_kb(pid)["VmRSS"])
        await asyncio.sleep(0.05)
    return sorted(readings)[len(readings) // 2]


class MemoryWatch:
    """The peak VmRSS (KiB) of a process, sampled every ``interval`` seconds while the block
    runs, with the peak of ``extra(pid)`` when given (spooled upload files, say)."""

    def __init__(
        self, pid: int, *, interval: float = 0.02, extra: Callable[[int], int] | None = None
    ) -> None:
        self.pid, self.interval, self.extra = pid, interval, extra
        self.peak_kb = self.peak_extra = self.samples = 0
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        self.peak_kb = max(self.peak_kb, status_kb(self.pid)["VmRSS"])
        if self.extra is not None:
            self.peak_extra = max(self.peak_extra, self.extra(self.pid))
        self.samples += 1

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> MemoryWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.sample()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def queued_seconds(pid: int) -> float | None:
    """Seconds the main thread (the event loop) has waited, runnable, for a core; None without
    the kernel's scheduler statistics."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores so far, from /proc/stat."""
    user, nice, system, idle, iowait, *rest = map(int, Path("/proc/stat").read_text().split()[1:9])
    busy = user + nice + system + sum(rest)
    return busy, busy + idle + iowait


@dataclass(frozen=True)
class CpuSnapshot:
    """The CPU counters ``CpuUse.between`` compares: the servers', this process's, the machine's."""

    servers: tuple[float, ...]
    queued: tuple[float | None, ...]
    client: float
    machine: tuple[int, int]
    wall: float

    @classmethod
    def take(cls, pids: Sequence[int]) -> CpuSnapshot:
        return cls(
            servers=tuple(cpu_seconds(pid) for pid in pids),
            queued=tuple(queued_seconds(pid) for pid in pids),
            client=time.process_time(),
            machine=machine_ticks(),
            wall=time.perf_counter(),
        )


@dataclass(frozen=True)
class CpuUse:
    """CPU over a window in shares of one core (100 = a core): per server, its event loop's wait
    for a core (runnable), this script's; the machine's busy share of all its cores."""

    servers: tuple[float, ...]
    queued: tuple[float | None, ...]
    client: float
    machine: float

    @classmethod
    def between(cls, before: CpuSnapshot, after: CpuSnapshot) -> CpuUse:
        wall = after.wall - before.wall or math.nan
        busy, total = (a - b for a, b in zip(after.machine, before.machine, strict=True))
        return cls(
            servers=tuple(
                (a - b) / wall * 100 for a, b in zip(after.servers, before.servers, strict=True)
            ),
            queued=tuple(
                None if a is None or b is None else (a - b) / wall * 100
                for a, b in zip(after.queued, before.queued, strict=True)
            ),
            client=(after.client - before.client) / wall * 100,
            machine=busy / total * 100 if total else math.nan,
        )

    @property
    def server(self) -> float:
        return sum(self.servers)

    @property
    def server_queued(self) -> float | None:
        return None if None in self.queued else sum(q or 0.0 for q in self.queued)


def raise_open_files_limit() -> tuple[int, int]:
    """The soft limit of open files raised to the hard limit (the servers inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def cache_counters(clients: Sequence[httpx.AsyncClient]) -> dict[str, int] | None:
    """The servers' cache counters from /health/ready, summed; None when one is not reported."""
    if not clients:
        return None
    total: dict[str, int] = {}
    for client in clients:
        try:
            counters = (await client.get("/health/ready")).json().get("cache")
        except (httpx.HTTPError, ValueError) as error:
            print(f"cannot read /health/ready: {error}", file=sys.stderr)
            return None
        if not isinstance(counters, dict) or "hits" not in counters:
            return None
        for name, value in counters.items():
            if isinstance(value, int):
                total[name] = total.get(name, 0) + value
    return total
