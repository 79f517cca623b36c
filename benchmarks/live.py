"""Live subscription benchmark: one class of subscribers over two API processes, one mark.

Creates a throwaway database with one classroom of ``--subscribers`` students (default 1,000),
flushes a Redis database of its own and starts two ``rollcall serve`` processes sharing it
(``ROLLCALL_RATE_LIMITS=off``). Every student opens a graphql-transport-ws connection, half to
each process, sends ``connection_init`` with their own token and subscribes to
``attendanceUpdated`` (no arguments: their own marks). Once both processes report every listener
in ``/health/ready``, the teacher marks the whole class in one ``markAttendance`` call over HTTP,
``--rounds`` times (a different period each round). The script prints:

- the latency from the mark's commit to each client's receipt: p50/p95/p99/max over all rounds,
  and each round's p99 (target: p99 < 200 ms). The commit time is the server's clock right after
  the transaction committed, carried in the published event (``committed_at``), which this
  script reads from its own subscription to the classroom's channel; the same latency from
  the event's ``markedAt`` (PostgreSQL ``now()``, the transaction's start) also counts the
  mutation's own work;
- that latency split at the moment the marks were published: the script also subscribes to
  the classroom's Redis channel itself, so ``markedAt -> published`` is the mutation's work
  before its publish (the transaction, the cache invalidation), and ``published -> receipt``
  the fan-out (Redis to both processes, each listener's event, the websocket, this client);
- the latency from the arrival of the mutation's HTTP response (negative when the event came
  first: the server publishes before it answers);
- events missed (none within ``--timeout`` seconds; target 0) and wrong ones (another
  student's, or not the status marked);
- the server memory per idle connection: each process's RSS after the connections were opened
  and left idle, minus its RSS before (after a warm-up), divided by its connections (target:
  < 100 KB).

The client is this one asyncio process (on uvloop when installed). It stamps each message when
its connection's reader takes it off the socket, before any waiting task runs, so the figures
leave out this script's task scheduling but not its share of the machine's cores: the servers,
PostgreSQL, Redis and this client all run on the same machine.

Run from the repository root::

    .venv/bin/python benchmarks/live.py [--subscribers 1000] [--rounds 3] [--keep]

A script, not a test: it prints figures and exits 1 when a connection failed or an event was
missed or wrong (or, with ``--strict``, when a target was missed). It FLUSHES its Redis database
(``--redis-url``, default ``ROLLCALL_REDIS_URL`` or ``redis://127.0.0.1:6379/13``) at the start
and, unless ``--keep``, at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import math
import os
import random
import resource
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ``python benchmarks/live.py`` finds the project packages

import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from benchmarks.cache import cpu_seconds, flush_redis, run  # noqa: E402
from benchmarks.foundation import (  # noqa: E402
    BenchmarkError,
    add_server_arguments,
    percentile,
    scratch_database,
)
from rollcall.live_client import Closed, Completed, LiveClient, OperationError  # noqa: E402
from rollcall.processes import ServerProcess, child_env, running_server  # noqa: E402
from services.attendance import MAX_MARKS_PER_CALL  # noqa: E402
from services.auth import Viewer, hash_password, issue_token  # noqa: E402
from services.live import MarksEvent, classroom_channel  # noqa: E402
from services.models import (  # noqa: E402
    Classroom,
    ClassroomSubject,
    Role,
    Student,
    Subject,
    TeacherAssignment,
    Tenant,
    User,
)
from services.platform.codec import decode  # noqa: E402
from services.platform.db import create_engine, create_session_factory  # noqa: E402
from services.platform.settings import Settings  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
PROCESSES = 2
PERIODS_PER_DAY = 8
TOKEN_TTL_SECONDS = 8 * 3600
READY_TIMEOUT = 120.0  # seconds for every listener to show up in /health/ready
WARMUP_CONNECTIONS = 3  # per process, opened and closed before the first RSS reading
WARMUP_DAYS_BACK = 60  # the warm-up marks' date, well before any round's

TARGET_P99_MS = 200.0
TARGET_MISSED = 0
TARGET_KB_PER_CONNECTION = 100.0

SUBSCRIPTION = "subscription { attendanceUpdated { studentId status markedAt } }"
MARK = """
mutation Mark($input: MarkAttendanceInput!) { markAttendance(input: $input) { records { id } } }
"""
STATUSES = ("PRESENT", "ABSENT", "SICK", "LEAVE")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Roster:
    """One classroom, its teacher's token and each student's (id, token)."""

    tenant_id: uuid.UUID
    classroom_id: uuid.UUID
    subject_id: uuid.UUID
    teacher_token: str
    students: list[tuple[uuid.UUID, str]]


async def seed_class(settings: Settings, count: int) -> Roster:
    """A tenant with one classroom of ``count`` students, one subject and its teacher, inserted
    in bulk; tokens are issued here (with the servers' secret), not by logging in."""
    assert settings.database_url is not None
    tenant_id, classroom_id, subject_id, teacher_id = (uuid.uuid4() for _ in range(4))
    slug = f"bench-live-{tenant_id.hex[:8]}"
    password_hash = hash_password(uuid.uuid4().hex)  # nobody logs in
    user_ids = [uuid.uuid4() for _ in range(count)]
    student_ids = [uuid.uuid4() for _ in range(count)]
    engine = create_engine(settings.database_url, pool_max=2)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            await session.execute(
                insert(Tenant),
                [{"id": tenant_id, "slug": slug, "name": slug, "periods_per_day": PERIODS_PER_DAY}],
            )
            users = [
                {
                    "id": teacher_id,
                    "tenant_id": tenant_id,
                    "email": f"teacher@{slug}.school",
                    "password_hash": password_hash,
                    "role": Role.TEACHER,
                }
            ]
            users += [
                {
                    "id": user_id,
                    "tenant_id": tenant_id,
                    "email": f"student{n}@{slug}.school",
                    "password_hash": password_hash,
                    "role": Role.STUDENT,
                }
                for n, user_id in enumerate(user_ids)
            ]
            await session.execute(insert(User), users)
            await session.execute(
                insert(Classroom), [{"id": classroom_id, "tenant_id": tenant_id, "name": "1-A"}]
            )
            await session.execute(
                insert(Subject), [{"id": subject_id, "tenant_id": tenant_id, "name": "Maths"}]
            )
            await session.execute(
                insert(ClassroomSubject),
                [{"tenant_id": tenant_id, "classroom_id": classroom_id, "subject_id": subject_id}],
            )
            await session.execute(
                insert(TeacherAssignment),
                [{"tenant_id": tenant_id, "teacher_id": teacher_id, "classroom_id": classroom_id}],
            )
            await session.execute(
                insert(Student),
                [
                    {
                        "id": student_id,
                        "tenant_id": tenant_id,
                        "classroom_id": classroom_id,
                        "user_id": user_id,
                        "name": f"Student {n:04d}",
                    }
                    for n, (student_id, user_id) in enumerate(
                        zip(student_ids, user_ids, strict=True)
                    )
                ],
            )
    finally:
        await engine.dispose()
    now = datetime.now(UTC)

    def token(user_id: uuid.UUID, role: Role, student_id: uuid.UUID | None = None) -> str:
        viewer = Viewer(user_id=user_id, tenant_id=tenant_id, role=role, student_id=student_id)
        return issue_token(
            viewer, secret=settings.jwt_secret, ttl_seconds=TOKEN_TTL_SECONDS, now=now
        )

    return Roster(
        tenant_id=tenant_id,
        classroom_id=classroom_id,
        subject_id=subject_id,
        teacher_token=token(teacher_id, Role.TEACHER),
        students=[
            (student_id, token(user_id, Role.STUDENT, student_id))
            for student_id, user_id in zip(student_ids, user_ids, strict=True)
        ],
    )


def server_env(settings: Settings) -> dict[str, str]:
    """This environment without any ``ROLLCALL_*`` variable, plus the scratch database, the
    flushed Redis, the secret the tokens were signed with and rate limits off."""
    assert settings.database_url is not None and settings.redis_url is not None
    return child_env(
        ROLLCALL_DATABASE_URL=settings.database_url,
        ROLLCALL_REDIS_URL=settings.redis_url,
        ROLLCALL_JWT_SECRET=settings.jwt_secret,
        ROLLCALL_RATE_LIMITS="off",
    )


# --------------------------------------------------------------------------- servers


def rss_kb(pid: int) -> int:
    """The process's resident set size (VmRSS) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchmarkError(f"no VmRSS for pid {pid}")


async def live_report(http: httpx.AsyncClient) -> dict[str, Any]:
    """The ``live`` section of /health/ready: connections, listeners, delivered, dropped…"""
    response = await http.get("/health/ready")
    report: dict[str, Any] = response.json()["live"]
    return report


async def wait_live(
    https: Sequence[httpx.AsyncClient], expected: Sequence[int], *, within: float
) -> float:
    """Until every process reports ``expected`` connections and listeners; the seconds taken."""
    started = time.perf_counter()
    deadline = started + within
    while True:
        reports = await asyncio.gather(*(live_report(http) for http in https))
        counts = [(report["connections"], report["listeners"]) for report in reports]
        if all(c == (n, n) for c, n in zip(counts, expected, strict=True)):
            return time.perf_counter() - started
        if time.perf_counter() > deadline:
            raise BenchmarkError(
                f"(connections, listeners) per process stayed {counts}, expected {list(expected)}"
            )
        await asyncio.sleep(0.05)


async def warm_up(server: ServerProcess, http: httpx.AsyncClient, roster: Roster) -> None:
    """One GraphQL query, and a few connections that subscribe as the benchmark's do and get
    one event each (a mark of their students, well before the rounds' dates, made through this
    process), closed again: imports, pools and first-call costs of the whole path count before
    the first RSS reading and the first round."""
    response = await http.post(
        "/graphql",
        json={"query": "{ __typename }"},
        headers={"authorization": f"Bearer {roster.teacher_token}"},
    )
    if response.status_code != 200 or "errors" in response.json():
        raise BenchmarkError(f"warm-up query failed: {response.status_code} {response.text[:200]}")
    students = roster.students[:WARMUP_CONNECTIONS]
    async with contextlib.AsyncExitStack() as stack:
        operations: list[tuple[LiveClient, str]] = []
        for _, token in students:
            client = await stack.enter_async_context(LiveClient.connect(server.ws_url))
            await client.init(token, within=30)
            operations.append((client, await client.subscribe(SUBSCRIPTION)))
        await wait_live([http], [len(students)], within=30)
        day = datetime.now(UTC).date() - timedelta(days=WARMUP_DAYS_BACK)
        await mark_class(http, roster, {str(s): "PRESENT" for s, _ in students}, day, 1)
        for (student_id, _), (client, operation) in zip(students, operations, strict=True):
            payload = await client.next(operation, within=10)
            event = (payload.get("data") or {}).get("attendanceUpdated") or {}
            if event.get("studentId") != str(student_id):
                raise BenchmarkError(f"warm-up event is not the student's: {payload}")


def log_problems(server: ServerProcess) -> list[str]:
    """Lines of the server's log that report a warning, an error or a traceback."""
    words = ("WARNING", "ERROR", "CRITICAL", "Traceback", "Exception")
    text = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    return [line for line in text.splitlines() if any(word in line for word in words)]


class PublishWatch:
    """This script's own subscription to the classroom's Redis channel: when each publish
    reached a Redis subscriber, as the API processes' hubs see it."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.redis = aioredis.Redis.from_url(redis_url)
        self.channel = channel
        self.pubsub = self.redis.pubsub()
        self.times: list[float] = []
        self.committed: list[float] = []  # each published call's committedAt, epoch seconds
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PublishWatch:
        await self.pubsub.subscribe(self.channel)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.pubsub.aclose()
        await self.redis.aclose()

    async def _read(self) -> None:
        async for message in self.pubsub.listen():
            if message.get("type") == "message":
                self.times.append(time.time())
                event = decode(MarksEvent, message["data"])
                self.committed.append(event.committed_at.timestamp())


# --------------------------------------------------------------------------- clients


class StampedQueue(asyncio.Queue[dict[str, Any]]):
    """An operation's message queue that notes when the connection's reader put each message
    in, i.e. when it came off the socket, before the task waiting for it is scheduled."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: collections.deque[float] = collections.deque()

    def put_nowait(self, item: dict[str, Any]) -> None:
        self.arrivals.append(time.time())
        super().put_nowait(item)

    def drain(self) -> int:
        """Discard every message not yet taken; how many there were."""
        count = 0
        while not self.empty():
            self.get_nowait()
            count += 1
        self.arrivals.clear()
        return count


@dataclass
class Subscriber:
    student_id: str
    token: str
    process: int
    call: int  # which markAttendance call of a round marks this student
    client: LiveClient | None = None
    operation: str = ""
    queue: StampedQueue = field(default_factory=StampedQueue)
    connect_seconds: float = math.nan
    error: str | None = None  # why the connection failed or ended early

    async def hold(
        self, url: str, gate: asyncio.Semaphore, ready: asyncio.Future[None], stop: asyncio.Event
    ) -> None:
        """Connect, ``connection_init``, subscribe (holding a slot of ``gate`` meanwhile), then
        keep the connection open until ``stop`` is set."""
        await gate.acquire()
        holding = True
        try:
            started = time.perf_counter()
            async with LiveClient.connect(url) as client:
                await client.init(self.token, within=30)
                self.operation = await client.subscribe(SUBSCRIPTION)
                # LiveClient routes each operation's messages to its own queue; this one stamps
                # them. Nothing can have arrived yet: nothing was marked.
                client._operations[self.operation] = self.queue
                self.client = client
                self.connect_seconds = time.perf_counter() - started
                gate.release()
                holding = False
                ready.set_result(None)
                await stop.wait()
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"
            if not ready.done():
                ready.set_exception(error)
        finally:
            if holding:
                gate.release()

    @property
    def dropped(self) -> bool:
        """The server closed this connection."""
        return self.client is not None and self.client.closed.done()


@dataclass
class Receipt:
    """What one subscriber got in one round."""

    arrived: float | None = None  # time.time() when the reader took the message off the socket
    taken: float | None = None  # time.time() when the waiting task had it
    marked_at: float | None = None
    problem: str | None = None  # "missed" or what was wrong


async def receive(subscriber: Subscriber, expected: str, within: float) -> Receipt:
    assert subscriber.client is not None
    try:
        payload = await subscriber.client.next(subscriber.operation, within=within)
    except TimeoutError:
        return Receipt(problem="missed")
    except (OperationError, Completed, Closed) as error:
        subscriber.queue.arrivals.clear()
        return Receipt(problem=f"missed: {type(error).__name__} {error}")
    taken = time.time()
    arrived = subscriber.queue.arrivals.popleft() if subscriber.queue.arrivals else taken
    event = (payload.get("data") or {}).get("attendanceUpdated")
    if payload.get("errors") or not event:
        return Receipt(arrived, taken, problem=f"error payload: {str(payload)[:200]}")
    marked_at = datetime.fromisoformat(event["markedAt"]).timestamp()
    receipt = Receipt(arrived, taken, marked_at)
    if event["studentId"] != subscriber.student_id:
        receipt.problem = f"wrong student: {event['studentId']} to {subscriber.student_id}"
    elif event["status"] != expected:
        receipt.problem = f"wrong status: {event['status']}, marked {expected}"
    return receipt


# --------------------------------------------------------------------------- rounds


@dataclass
class Round:
    number: int
    day: date
    period: int
    via: int  # the process that took the mutation
    mutation_ms: float = math.nan
    from_marked_at: list[float] = field(default_factory=list)  # ms
    from_commit: list[float] = field(default_factory=list)  # ms
    marked_to_published: list[float] = field(default_factory=list)  # ms, per call
    from_published: list[float] = field(default_factory=list)  # ms
    from_published_by_process: dict[int, list[float]] = field(default_factory=dict)  # ms
    from_response: list[float] = field(default_factory=list)  # ms
    dispatch: list[float] = field(default_factory=list)  # ms, reader to waiting task
    missed: int = 0
    wrong: int = 0
    extra: int = 0  # events beyond the one expected
    problems: list[str] = field(default_factory=list)
    server_cpu_ms: list[float] = field(default_factory=list)
    client_cpu_ms: float = math.nan
    delivered: list[int] = field(default_factory=list)  # per process, from the hub's counters
    hub_dropped: list[int] = field(default_factory=list)


async def mark_class(
    http: httpx.AsyncClient,
    roster: Roster,
    statuses: dict[str, str],
    day: date,
    period: int,
) -> None:
    """The teacher marks every student (in calls of at most MAX_MARKS_PER_CALL)."""
    marks = [{"studentId": s, "status": status} for s, status in statuses.items()]
    for start in range(0, len(marks), MAX_MARKS_PER_CALL):
        chunk = marks[start : start + MAX_MARKS_PER_CALL]
        response = await http.post(
            "/graphql",
            json={
                "query": MARK,
                "variables": {
                    "input": {
                        "classroomId": str(roster.classroom_id),
                        "date": day.isoformat(),
                        "period": period,
                        "subjectId": str(roster.subject_id),
                        "marks": chunk,
                    }
                },
            },
            headers={"authorization": f"Bearer {roster.teacher_token}"},
        )
        body = response.json()
        records = ((body.get("data") or {}).get("markAttendance") or {}).get("records") or []
        if response.status_code != 200 or "errors" in body or len(records) != len(chunk):
            raise BenchmarkError(f"markAttendance failed: {response.status_code} {str(body)[:300]}")


async def run_round(
    number: int,
    subscribers: Sequence[Subscriber],
    servers: Sequence[ServerProcess],
    https: Sequence[httpx.AsyncClient],
    roster: Roster,
    args: argparse.Namespace,
    rng: random.Random,
    watch: PublishWatch,
) -> Round:
    index = number - 1
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    result = Round(
        number=number,
        day=yesterday - timedelta(days=index // PERIODS_PER_DAY),
        period=index % PERIODS_PER_DAY + 1,
        via=index % len(servers),
    )
    statuses = {s.student_id: rng.choice(STATUSES) for s in subscribers}
    hubs_before = await asyncio.gather(*(live_report(http) for http in https))
    watch.times.clear()
    watch.committed.clear()
    receivers = [
        asyncio.create_task(receive(s, statuses[s.student_id], args.timeout)) for s in subscribers
    ]
    await asyncio.sleep(0.05)  # every receiver is waiting before the mark
    cpu_before = [cpu_seconds(server.pid) for server in servers]
    client_before = time.process_time()
    sent = time.time()
    try:
        await mark_class(https[result.via], roster, statuses, result.day, result.period)
    except BaseException:
        for task in receivers:
            task.cancel()
        await asyncio.gather(*receivers, return_exceptions=True)
        raise
    responded = time.time()
    result.mutation_ms = (responded - sent) * 1000
    receipts = await asyncio.gather(*receivers)
    result.client_cpu_ms = (time.process_time() - client_before) * 1000
    result.server_cpu_ms = [
        (cpu_seconds(server.pid) - before) * 1000
        for server, before in zip(servers, cpu_before, strict=True)
    ]
    await asyncio.sleep(args.quiet)  # anything more that arrives now is an extra event
    result.extra = sum(s.queue.drain() for s in subscribers)
    published = list(watch.times)
    committed = list(watch.committed)
    calls = math.ceil(len(subscribers) / MAX_MARKS_PER_CALL)
    if len(published) != calls:
        result.problems.append(f"saw {len(published)} publishes on Redis, expected {calls}")
    marked_at: dict[int, float] = {}
    for subscriber, receipt in zip(subscribers, receipts, strict=True):
        if receipt.marked_at is not None:
            marked_at.setdefault(subscriber.call, receipt.marked_at)
        if (
            receipt.arrived is not None
            and receipt.marked_at is not None
            and subscriber.call < len(published)
        ):
            fan_out = (receipt.arrived - published[subscriber.call]) * 1000
            result.from_published.append(fan_out)
            result.from_commit.append((receipt.arrived - committed[subscriber.call]) * 1000)
            result.from_published_by_process.setdefault(subscriber.process, []).append(fan_out)
    result.marked_to_published = [
        (published[call] - at) * 1000
        for call, at in sorted(marked_at.items())
        if call < len(published)
    ]
    for receipt in receipts:
        if receipt.problem is not None:
            if receipt.problem.startswith("missed"):
                result.missed += 1
            else:
                result.wrong += 1
            result.problems.append(receipt.problem)
        if receipt.arrived is None or receipt.marked_at is None or receipt.taken is None:
            continue
        result.from_marked_at.append((receipt.arrived - receipt.marked_at) * 1000)
        result.from_response.append((receipt.arrived - responded) * 1000)
        result.dispatch.append((receipt.taken - receipt.arrived) * 1000)
    hubs_after = await asyncio.gather(*(live_report(http) for http in https))
    result.delivered = [
        after["delivered"] - before["delivered"]
        for before, after in zip(hubs_before, hubs_after, strict=True)
    ]
    result.hub_dropped = [
        after["dropped"] - before["dropped"]
        for before, after in zip(hubs_before, hubs_after, strict=True)
    ]
    return result


def describe_round(r: Round, received: int, total: int) -> str:
    samples = r.from_marked_at or [math.nan]
    fan_out = r.from_published or [math.nan]
    published = ", ".join(f"{ms:.0f}" for ms in r.marked_to_published) or "-"
    by_process = "; ".join(
        f"process {process + 1} p50 {percentile(samples, 50):.1f} p99 "
        f"{percentile(samples, 99):.1f} ms"
        for process, samples in sorted(r.from_published_by_process.items())
    )
    return (
        f"  round {r.number} ({r.day} period {r.period}, marked via process {r.via + 1}): "
        f"mutation {r.mutation_ms:.0f} ms; received {received}/{total}; missed {r.missed}, "
        f"wrong {r.wrong}, extra {r.extra}\n"
        f"    markedAt -> receipt p50 {percentile(samples, 50):.1f} p99 "
        f"{percentile(samples, 99):.1f} max {max(samples):.1f} ms = markedAt -> published "
        f"{published} ms + published -> receipt p50 {percentile(fan_out, 50):.1f} p99 "
        f"{percentile(fan_out, 99):.1f} max {max(fan_out):.1f} ms\n"
        f"    published -> receipt by process: {by_process or '-'}\n"
        f"    CPU ms (mark to last receipt): servers "
        f"{' + '.join(f'{ms:.0f}' for ms in r.server_cpu_ms)}, client {r.client_cpu_ms:.0f}; "
        f"hub delivered {r.delivered}, dropped {r.hub_dropped}"
    )


# --------------------------------------------------------------------------- report


@dataclass
class Figure:
    name: str
    value: str
    target: str = "-"
    passed: bool | None = None  # None: information only


def render(figures: Sequence[Figure]) -> str:
    header = ("figure", "value", "target", "result")
    rows = [
        (
            f.name,
            f.value,
            f.target,
            {True: "PASS", False: "MISSED", None: "info"}[f.passed],
        )
        for f in figures
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i == 1 else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


@dataclass
class Outcome:
    figures: list[Figure]
    failed: bool  # a connection failed, or an event was missed or wrong
    targets_met: bool


def summarise(
    counts: Sequence[int],
    connect_seconds: float,
    listen_seconds: float,
    connect_times: Sequence[float],
    rounds: Sequence[Round],
    memory_kb: Sequence[float],
    args: argparse.Namespace,
) -> list[Figure]:
    total = sum(counts)
    latencies = [ms for r in rounds for ms in r.from_marked_at] or [math.nan]
    from_commit = [ms for r in rounds for ms in r.from_commit] or [math.nan]
    from_response = [ms for r in rounds for ms in r.from_response] or [math.nan]
    fan_out = [ms for r in rounds for ms in r.from_published] or [math.nan]
    before_publish = [ms for r in rounds for ms in r.marked_to_published] or [math.nan]
    dispatch = [ms for r in rounds for ms in r.dispatch] or [math.nan]
    missed = sum(r.missed for r in rounds)
    wrong = sum(r.wrong for r in rounds) + sum(r.extra for r in rounds)
    p99 = percentile(from_commit, 99)
    figures = [
        Figure("subscribers per process", " / ".join(map(str, counts))),
        Figure(
            f"connect, init and subscribe all ({args.concurrency} at a time)",
            f"{connect_seconds:.2f} s",
        ),
        Figure("  then until every listener was reported", f"{listen_seconds:.2f} s"),
        Figure(
            "  one connection, p50 / max",
            f"{percentile(connect_times, 50) * 1000:.0f} / {max(connect_times) * 1000:.0f} ms"
            if connect_times
            else "-",
        ),
        Figure(
            f"mutation round trip ({total} marks), mean",
            f"{sum(r.mutation_ms for r in rounds) / len(rounds):.0f} ms",
        ),
        Figure(f"events received ({len(rounds)} rounds)", str(len(latencies))),
    ]
    for q in (50, 95):
        figures.append(Figure(f"commit -> receipt p{q}", f"{percentile(from_commit, q):.1f} ms"))
    figures.append(
        Figure(
            "commit -> receipt p99",
            f"{p99:.1f} ms",
            f"< {TARGET_P99_MS:.0f} ms",
            p99 < TARGET_P99_MS,
        )
    )
    for r in rounds:
        samples = r.from_commit or [math.nan]
        figures.append(Figure(f"  round {r.number} p99", f"{percentile(samples, 99):.1f} ms"))
    figures += [
        Figure("commit -> receipt max", f"{max(from_commit):.1f} ms"),
        Figure("markedAt -> receipt p50", f"{percentile(latencies, 50):.1f} ms"),
        Figure("markedAt -> receipt p99", f"{percentile(latencies, 99):.1f} ms"),
        Figure(
            "  of which markedAt -> published, mean",
            f"{sum(before_publish) / len(before_publish):.1f} ms",
        ),
        Figure("  published -> receipt p50", f"{percentile(fan_out, 50):.1f} ms"),
        Figure("  published -> receipt p99 (lower bound)", f"{percentile(fan_out, 99):.1f} ms"),
        Figure("  published -> receipt max", f"{max(fan_out):.1f} ms"),
        Figure("HTTP response -> receipt p50", f"{percentile(from_response, 50):.1f} ms"),
        Figure("client reader -> waiting task p99", f"{percentile(dispatch, 99):.1f} ms"),
        Figure(
            f"missed (nothing within {args.timeout:g} s)",
            str(missed),
            str(TARGET_MISSED),
            missed == TARGET_MISSED,
        ),
        Figure("wrong or extra events", str(wrong), "0", wrong == 0),
    ]
    for index, kb in enumerate(memory_kb):
        figures.append(
            Figure(
                f"memory per idle connection, process {index + 1}",
                f"{kb:.1f} KB",
                f"< {TARGET_KB_PER_CONNECTION:.0f} KB",
                kb < TARGET_KB_PER_CONNECTION,
            )
        )
    mean_kb = sum(memory_kb) / len(memory_kb)
    figures.append(
        Figure(
            "memory per idle connection, mean",
            f"{mean_kb:.1f} KB",
            f"< {TARGET_KB_PER_CONNECTION:.0f} KB",
            mean_kb < TARGET_KB_PER_CONNECTION,
        )
    )
    return figures


# --------------------------------------------------------------------------- main


async def benchmark(args: argparse.Namespace, settings: Settings) -> Outcome:
    assert settings.redis_url is not None
    started = time.perf_counter()
    roster = await seed_class(settings, args.subscribers)
    print(
        f"seeded one classroom of {args.subscribers} students in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    await flush_redis(settings.redis_url)
    env = server_env(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            servers: list[ServerProcess] = list(
                await asyncio.gather(
                    *(stack.enter_async_context(running_server(env)) for _ in range(PROCESSES))
                )
            )
            https = [
                await stack.enter_async_context(
                    httpx.AsyncClient(base_url=server.base_url, timeout=60.0)
                )
                for server in servers
            ]
            try:
                return await measure(args, roster, servers, https)
            except BaseException:
                for index, server in enumerate(servers):
                    print(f"\n--- server process {index + 1} (pid {server.pid}) log tail ---")
                    print(server.log_tail(40))
                raise
    finally:
        if not args.keep:
            await flush_redis(settings.redis_url)


async def measure(
    args: argparse.Namespace,
    roster: Roster,
    servers: Sequence[ServerProcess],
    https: Sequence[httpx.AsyncClient],
) -> Outcome:
    for index, server in enumerate(servers):
        print(f"process {index + 1}: pid {server.pid} at {server.base_url}", flush=True)
    for server, http in zip(servers, https, strict=True):
        await warm_up(server, http, roster)
    await wait_live(https, [0] * len(servers), within=30)
    await asyncio.sleep(args.idle)
    rss_before = [rss_kb(server.pid) for server in servers]

    subscribers = [
        Subscriber(
            student_id=str(student_id),
            token=token,
            process=index % len(servers),
            call=index // MAX_MARKS_PER_CALL,
        )
        for index, (student_id, token) in enumerate(roster.students)
    ]
    counts = [sum(1 for s in subscribers if s.process == p) for p in range(len(servers))]
    gate = asyncio.Semaphore(args.concurrency)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    readies: list[asyncio.Future[None]] = [loop.create_future() for _ in subscribers]
    print(f"opening {len(subscribers)} connections, {args.concurrency} at a time…", flush=True)
    opened = time.perf_counter()
    holders = [
        asyncio.create_task(s.hold(servers[s.process].ws_url, gate, ready, stop))
        for s, ready in zip(subscribers, readies, strict=True)
    ]
    try:
        outcomes = await asyncio.gather(*readies, return_exceptions=True)
        connect_seconds = time.perf_counter() - opened
        failures = [s for s, outcome in zip(subscribers, outcomes, strict=True) if outcome]
        if failures:
            raise BenchmarkError(
                f"{len(failures)} of {len(subscribers)} connections failed; first: "
                f"{failures[0].error}"
            )
        listen_seconds = await wait_live(https, counts, within=READY_TIMEOUT)
        print(
            f"  all subscribed in {connect_seconds:.2f} s; every listener reported "
            f"{listen_seconds:.2f} s later; idling {args.idle:g} s",
            flush=True,
        )
        await asyncio.sleep(args.idle)
        rss_after = [rss_kb(server.pid) for server in servers]
        memory_kb = [
            (after - before) / count
            for before, after, count in zip(rss_before, rss_after, counts, strict=True)
        ]
        for index, (before, after) in enumerate(zip(rss_before, rss_after, strict=True)):
            print(
                f"  process {index + 1} RSS {before / 1024:.1f} MB -> {after / 1024:.1f} MB "
                f"({counts[index]} idle connections: {memory_kb[index]:.1f} KB each)",
                flush=True,
            )

        rng = random.Random(args.seed)
        rounds: list[Round] = []
        channel = classroom_channel(roster.tenant_id, roster.classroom_id).name
        print(f"marking the class {args.rounds} times…", flush=True)
        async with PublishWatch(args.redis_url, channel) as watch:
            for number in range(1, args.rounds + 1):
                result = await run_round(
                    number, subscribers, servers, https, roster, args, rng, watch
                )
                rounds.append(result)
                received = len(result.from_marked_at)
                print(describe_round(result, received, len(subscribers)), flush=True)
                for problem, times in collections.Counter(result.problems).most_common(5):
                    print(f"    {times} x {problem}")
                await asyncio.sleep(args.pause)
        dropped = [s for s in subscribers if s.dropped]
        if dropped:
            first = dropped[0].client
            assert first is not None
            print(
                f"  {len(dropped)} connections were closed by the server; first: "
                f"{first.closed.result()}"
            )
        reports = await asyncio.gather(*(live_report(http) for http in https))
        for index, report in enumerate(reports):
            print(f"  process {index + 1} live report: {report}")
    finally:
        stop.set()
        await asyncio.gather(*holders, return_exceptions=True)

    problems = [log_problems(server) for server in servers]
    for index, lines in enumerate(problems):
        if lines:
            print(f"\nprocess {index + 1} logged {len(lines)} warnings/errors; the first:")
            print("\n".join(f"  {line}" for line in lines[:10]))
    figures = summarise(
        counts,
        connect_seconds,
        listen_seconds,
        [s.connect_seconds for s in subscribers],
        rounds,
        memory_kb,
        args,
    )
    failed = bool(dropped) or any(r.missed or r.wrong or r.extra for r in rounds)
    if failed or any(problems):
        for index, server in enumerate(servers):
            print(f"\n--- server process {index + 1} (pid {server.pid}) log tail ---")
            print(server.log_tail(30))
    print()
    print(render(figures))
    print(
        "(commit: the server's clock right after the mark's transaction committed, carried in "
        "the published event; the target is judged on commit -> receipt. markedAt is "
        "PostgreSQL now() at the transaction's start, so markedAt -> receipt also counts the "
        "mutation's own work. 'published' is when this script's own Redis subscriber saw the "
        "marks, after the commit and the cache invalidation. Receipt: when this client's reader "
        "took the message off the socket. KB = 1,024 bytes of RSS.)"
    )
    return Outcome(
        figures=figures,
        failed=failed,
        targets_met=all(f.passed is not False for f in figures),
    )


def raise_open_files_limit() -> tuple[int, int]:
    """The soft limit of open files raised to the hard limit (the servers inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/live.py",
        description="Latency and memory of live attendance subscriptions over two API processes.",
    )
    parser.add_argument(
        "--subscribers", type=int, default=1000, help="students of the class, one connection each"
    )
    add_server_arguments(parser, redis_default=DEFAULT_REDIS_URL)
    parser.add_argument("--rounds", type=int, default=3, help="times the class is marked")
    parser.add_argument(
        "--concurrency", type=int, default=50, help="connections being opened at once"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds after which an event counts missed"
    )
    parser.add_argument(
        "--idle", type=float, default=2.0, help="idle seconds before each RSS reading"
    )
    parser.add_argument(
        "--quiet", type=float, default=0.5, help="seconds to watch for extra events after a round"
    )
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between rounds")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the statuses")
    parser.add_argument("--keep", action="store_true", help="keep the database (and Redis data)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.subscribers < PROCESSES or args.rounds < 1 or args.concurrency < 1:
        parser.error(f"--subscribers must be at least {PROCESSES}; --rounds, --concurrency >= 1")
    if args.timeout <= 0 or min(args.idle, args.quiet, args.pause) < 0:
        parser.error("--timeout must be positive; --idle, --quiet and --pause not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    soft, _ = raise_open_files_limit()
    # scratch_database reads the servers' addresses from the environment.
    os.environ["ROLLCALL_DATABASE_URL"] = args.database_url
    os.environ["ROLLCALL_REDIS_URL"] = args.redis_url
    started = time.perf_counter()
    with scratch_database(
        "rollcall_bench_live", redis_default=DEFAULT_REDIS_URL, keep=args.keep
    ) as db:
        redis = urlsplit(db.settings.redis_url or "")
        print(
            f"rollcall live benchmark: {os.cpu_count()} CPUs, {args.subscribers} subscribers over "
            f"{PROCESSES} API processes, {args.rounds} rounds, open files limit {soft}, "
            f"database {db.name}, Redis {redis.hostname}:{redis.port}{redis.path} (flushed)",
            flush=True,
        )
        outcome: Outcome = run(benchmark(args, db.settings))
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    if outcome.failed:
        print("events were MISSED or wrong, or connections dropped (see above)")
    return 1 if outcome.failed or (args.strict and not outcome.targets_met) else 0


if __name__ == "__main__":
    sys.exit(main())
