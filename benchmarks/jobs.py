"""Worker throughput (figure A) and how soon a mark turns into an alert (figure B), with the
workers' poll delays as shipped and patched: see benchmarks/README.md."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import result_key_prefix
from arq.worker import Function, Worker
from sqlalchemy import delete, func, select

from benchmarks import harness
from benchmarks.harness import BenchmarkError, Cell, Report, Samples, Timed
from graph.app import create_app
from jobs.platform import durable
from jobs.worker import WorkerSettings, create_workers, run_workers, shared_context
from services.models import AlertState, AttendanceStatus, Notification, NotificationType, Student
from services.platform.db import SessionFactory
from services.platform.settings import Settings
from services.queue import CHECK_THRESHOLDS, Queue, enqueue, schedule_threshold_check
from services.seed import DEMO_PERIODS
from tests.factories import Factory

SEED_PREFIX = "bench-jobs"
COUNTER_KEY = "bench:jobs:incr"
NOTIFICATION_POLL_SECONDS = 0.01
WATCH_SECONDS = 0.002  # how often the drain watcher looks at the workers' counters
HISTORY = [AttendanceStatus.PRESENT] * 16 + [AttendanceStatus.ABSENT] * 4  # 80 %: OK
# one more absence: 16/21 = 76.2 % (WARNING, below 80); another: 16/22 = 72.7 % (MAHROOM, <= 75)
STEPS = ((NotificationType.ATTENDANCE_WARNING, 1), (NotificationType.MAHROOM_ALERT, 2))
MARK = """mutation Mark($input: MarkAttendanceInput!) {
  markAttendance(input: $input) { records { id studentId status } } }"""
THROUGHPUT = ("workload", "worker poll_delay", "jobs", "enqueue/s", "drain s", "jobs/s")
THROUGHPUT += ("students/s", "run s", "process CPU", "failed")
LATENCY = ("measure", "worker poll_delay", *harness.TIMED, "errors")
FORMATS = dict.fromkeys(("enqueue/s", "jobs/s", "students/s"), "{:.0f}")
FORMATS |= {"process CPU": "{:.0f} %"}
FORMATS |= {name: "{:.1f}" for name in LATENCY if name.endswith(" ms")}

logger = logging.getLogger("benchmarks.jobs")


async def bench_incr(ctx: dict[str, Any], number: int) -> int:
    """The cheapest job that still touches Redis: one INCR."""
    return int(await ctx["redis"].incr(COUNTER_KEY))


FUNCTIONS: Sequence[Function] = (*WorkerSettings.functions, durable(bench_incr, timeout_seconds=10))


def poll_label(poll_delay: float | None) -> str:
    if poll_delay is None:
        urgent, normal = WorkerSettings.urgent_poll_delay, WorkerSettings.normal_poll_delay
        return f"U {urgent:g} s / N {normal:g} s (shipped)"
    return f"{poll_delay:g} s (patched)"


@dataclass
class Throughput:
    """One burst run of both workers over a pre-filled queue."""

    workload: str
    poll: str
    jobs: int
    students: int = 0
    enqueue_seconds: float = 0.0
    drain_seconds: float = 0.0  # workers started -> last job finished
    run_seconds: float = 0.0  # workers started -> both burst workers returned
    cpu_seconds: float = 0.0  # this process's CPU time over the run (one core = run_seconds)
    drained_at: dict[str, float] = field(default_factory=dict)  # per queue
    failed: int = 0
    retried: int = 0
    error: str | None = None

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.drain_seconds if self.drain_seconds else 0.0

    @property
    def cpu_percent(self) -> float | None:
        return 100 * self.cpu_seconds / self.run_seconds if self.run_seconds else None

    @property
    def failures(self) -> int:
        return self.failed + self.retried + (1 if self.error else 0)

    def cells(self) -> tuple[Cell, ...]:
        drain, enqueue = self.drain_seconds, self.enqueue_seconds
        rates = (self.jobs / enqueue if enqueue else None, drain, self.jobs_per_second)
        per_student = self.students / drain if self.students and drain else None
        rest = (per_student, self.run_seconds, self.cpu_percent, self.failures)
        return (self.workload, self.poll, self.jobs, *rates, *rest)

    def line(self) -> str:
        drained = sorted(self.drained_at.items(), key=lambda item: item[1])
        queues = ", ".join(f"{q.rsplit(':', 1)[-1]} drained at {at:.2f} s" for q, at in drained)
        failed = f" FAILED={self.failed} RETRIED={self.retried} {self.error or ''}"
        return (
            f"  [{self.poll}] {self.workload}: {self.jobs} job(s) in {self.drain_seconds:.2f} s = "
            f"{self.jobs_per_second:.0f} jobs/s ({queues}; burst run {self.run_seconds:.2f} s)"
            + (failed if self.failures else "")
        )


def describe(samples: Samples) -> str:
    """The one-line summary, or why there are no samples."""
    if samples.latencies:
        return samples.summary()
    return f"no samples, {samples.errors} errors ({samples.first_error})"


def start_workers(
    settings: Settings, shared: dict[str, Any], poll_delay: float | None, *, burst: bool = False
) -> tuple[list[Worker], asyncio.Task[None]]:
    """Both workers (no cron jobs) running, their poll delays as shipped or ``poll_delay``."""
    workers = create_workers(settings, shared, functions=FUNCTIONS, cron_jobs=(), burst=burst)
    for worker in workers if poll_delay is not None else ():
        worker.poll_delay_s = poll_delay
    return workers, asyncio.create_task(run_workers(workers))


def finished(worker: Worker) -> int:
    return worker.jobs_complete + worker.jobs_failed


async def drain(
    settings: Settings, result: Throughput, *, poll_delay: float | None, expected: dict[str, int]
) -> Throughput:
    """Both workers in burst mode until the queues are empty; fills in ``result``'s timings."""
    async with shared_context(settings, retry_backoff_seconds=0.05) as shared:
        started, cpu_started = time.perf_counter(), time.process_time()
        workers, task = start_workers(settings, shared, poll_delay, burst=True)
        while not task.done():
            now = time.perf_counter() - started
            for worker in workers:
                queue = worker.queue_name
                waiting = queue in expected and queue not in result.drained_at
                if waiting and finished(worker) >= expected[queue]:
                    result.drained_at[queue] = now
            await asyncio.wait([task], timeout=WATCH_SECONDS)
        result.run_seconds = time.perf_counter() - started
        result.cpu_seconds = time.process_time() - cpu_started
        try:
            await task
        except Exception as error:  # a worker crashed: report it, keep the other figures
            result.error = f"{type(error).__name__}: {error}"
        for queue in expected:
            result.drained_at.setdefault(queue, result.run_seconds)
        result.drain_seconds = max(result.drained_at.values())
        result.failed = sum(worker.jobs_failed for worker in workers)
        result.retried = sum(worker.jobs_retried for worker in workers)
        done = sum(finished(worker) for worker in workers)
        if done != result.jobs and result.error is None:
            result.error = f"{done} of {result.jobs} jobs finished"
    return result


async def forget_results(arq: ArqRedis) -> None:
    if keys := await arq.keys(result_key_prefix + "*"):
        await arq.delete(*keys)


@dataclass
class Bench:
    args: argparse.Namespace
    settings: Settings
    arq: ArqRedis
    session_factory: SessionFactory
    report: Report


async def burst(
    bench: Bench, tenant_id: uuid.UUID, students: list[uuid.UUID], batch: int, poll: float | None
) -> Throughput:
    """One row of figure A: ``--jobs`` trivial jobs (``batch`` 0), or check_thresholds over
    ``students``, ``batch`` a job; queued (timed), then drained and checked."""
    arq, sessions = bench.arq, bench.session_factory
    await arq.delete(COUNTER_KEY)
    async with sessions() as session, session.begin():
        # every check run starts from no remembered standing, so each does the same work
        await session.execute(delete(AlertState).where(AlertState.tenant_id == tenant_id))
    expected = {Queue.URGENT.value: 0} | ({} if batch else {Queue.NORMAL.value: 0})
    started = time.perf_counter()
    async with sessions() as session:  # used only if Redis refused (the outbox)
        for number in range(bench.args.jobs) if batch == 0 else ():
            queue = Queue.URGENT if number % 2 == 0 else Queue.NORMAL
            await enqueue(arq, session, bench_incr.__name__, number, queue=queue)
            expected[queue.value] += 1
        for at in range(0, len(students), batch) if batch else ():
            group = students[at : at + batch]
            await schedule_threshold_check(arq, session, tenant_id=tenant_id, student_ids=group)
            expected[Queue.URGENT.value] += 1
    per_job = "1 student" if batch == 1 else f"{batch} students"
    workload = f"{CHECK_THRESHOLDS} ({per_job} per job)" if batch else "bench_incr (1 Redis INCR)"
    jobs, seconds = sum(expected.values()), time.perf_counter() - started
    result = Throughput(workload, poll_label(poll), jobs, len(students) if batch else 0, seconds)
    await drain(bench.settings, result, poll_delay=poll, expected=expected)
    if batch == 0 and (counted := int(await arq.get(COUNTER_KEY) or 0)) != jobs:
        result.error = result.error or f"counter is {counted}, expected {jobs}"
    if batch:
        async with sessions() as session:
            states = select(func.count()).select_from(AlertState)
            checked = await session.scalar(states.where(AlertState.tenant_id == tenant_id))
        if checked != len(students):
            result.error = result.error or f"{checked} of {len(students)} have an alert state"
    return result


async def figure_a(bench: Bench, delays: Sequence[float | None]) -> list[Throughput]:
    args, say = bench.args, bench.report.say
    say(f"seeding 1 class x {args.students} students x {args.days} days x {DEMO_PERIODS} periods…")
    started, sessions = time.perf_counter(), bench.session_factory
    shape = {"prefix": SEED_PREFIX, "students": args.students, "days": args.days}
    admin, _ = await harness.bulk_class(sessions, **shape)
    tenant_id = admin.tenant_id
    async with sessions() as session:
        of_tenant = select(Student.id).where(Student.tenant_id == tenant_id)
        students = list(await session.scalars(of_tenant.order_by(Student.id)))
    say(f"  seeded in {time.perf_counter() - started:.1f} s")
    say("figure A: jobs/s through one worker process (burst mode)…")
    results: list[Throughput] = []
    for poll_delay in delays:
        for batch in (0, 1, len(students)):
            results.append(await burst(bench, tenant_id, students, batch, poll_delay))
            say(results[-1].line())
    return results


async def wait_for_notification(bench: Bench, student: Student, kind: NotificationType) -> bool:
    """Poll the notifications table every 10 ms until the student's row exists; False on timeout."""
    mine = Notification.tenant_id == student.tenant_id, Notification.user_id == student.user_id
    query = select(Notification.id).where(*mine, Notification.type == kind)
    deadline = time.perf_counter() + bench.args.timeout
    while True:
        async with bench.session_factory() as session:
            if await session.scalar(query.limit(1)) is not None:
                return True
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(NOTIFICATION_POLL_SECONDS)


async def settle(arq: ArqRedis, *, within_seconds: float) -> None:
    """Wait until both queues are empty (a job stays in its queue until it has finished)."""
    deadline = time.perf_counter() + within_seconds
    while any([await arq.zcard(queue.value) for queue in Queue]):
        if time.perf_counter() > deadline:
            logger.warning("queues still busy after %.0f s", within_seconds)
            return
        await asyncio.sleep(0.02)


async def alert_latency(bench: Bench, poll_delay: float | None, rng: random.Random) -> list[Timed]:
    """Figure B's rows for one poll delay: mark -> notification per step, the mutation's round
    trip, and check_thresholds' queue wait and run time from arq's kept results."""
    args, settings, arq, mode = bench.args, bench.settings, bench.arq, poll_label(poll_delay)
    factory = Factory(session_factory=bench.session_factory, settings=settings)
    # one extra student warms the whole path (API, enqueue, job, notification) unrecorded
    school = await factory.school(students=args.alert_students + 1)
    # factory tenants keep the default time zone, UTC
    first_day = datetime.now(UTC).date() - timedelta(days=len(HISTORY) + 30)
    history = [(first_day + timedelta(days=n), 1, status) for n, status in enumerate(HISTORY)]
    for student in school.students:
        await factory.records(school, student, history)
    warmup, *students = school.students
    token = school.token(school.teachers[0])
    latencies = {kind: Timed(f"mark -> {kind.value} row", mode) for kind, _ in STEPS}
    mark = Timed("markAttendance round trip", mode)
    waits, runs = (Timed(f"{CHECK_THRESHOLDS} {m} (arq)", mode) for m in ("queue wait", "run time"))
    await forget_results(arq)
    async with (
        shared_context(settings) as shared,
        harness.in_process(create_app(settings)) as graphql,
    ):
        workers, running = start_workers(settings, shared, poll_delay)
        try:
            while not all("redis" in worker.ctx for worker in workers):  # pools are up
                if running.done():
                    await running
                    raise BenchmarkError("the workers stopped before the first mark")
                await asyncio.sleep(0.01)
            _, _, error = await graphql.timed(MARK, school.absence_today(warmup), token)
            warned = NotificationType.ATTENDANCE_WARNING
            if error is not None or not await wait_for_notification(bench, warmup, warned):
                raise BenchmarkError(f"the warm-up mark raised no warning: {error or 'timeout'}")
            for kind, period in STEPS:
                samples = latencies[kind].samples
                for student in students:
                    # start at a random point of the workers' poll cycle, as real marks do
                    await asyncio.sleep(rng.uniform(0, args.jitter))
                    started = time.perf_counter()
                    marked = school.absence_today(student, period)
                    elapsed, _, error = await graphql.timed(MARK, marked, token)
                    mark.samples.record(elapsed, error)
                    if error is not None:
                        samples.fail(error)
                        continue
                    found = await wait_for_notification(bench, student, kind)
                    missing = None if found else f"no {kind.value} within {args.timeout:g} s"
                    samples.record((time.perf_counter() - started) * 1000, missing)
                bench.report.say(f"  [{mode}] {latencies[kind].name}: {describe(samples)}")
            # let the last check (which may still be between its commit and its result) and the
            # debounced statistics refresh finish, so no job is cancelled and re-run later
            await settle(arq, within_seconds=settings.statistics_refresh_delay_seconds + 10)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    for r in await arq.all_job_results():
        if r.function == CHECK_THRESHOLDS:
            waits.samples.latencies.append((r.start_time - r.enqueue_time).total_seconds() * 1000)
            runs.samples.latencies.append((r.finish_time - r.start_time).total_seconds() * 1000)
    for row in (mark, waits, runs):
        bench.report.say(f"  [{mode}] {row.name}: {describe(row.samples)}")
    return [*latencies.values(), mark, waits, runs]


async def benchmark(
    args: argparse.Namespace, settings: Settings, report: Report
) -> tuple[list[Throughput], list[Timed]]:
    assert settings.redis_url is not None
    delays: list[float | None] = [None] if args.no_patched else [None, args.patched_poll_delay]
    async with (
        harness.database_sessions(settings, pool_max=10) as sessions,
        await create_pool(RedisSettings.from_dsn(settings.redis_url)) as arq,
    ):
        bench = Bench(args, settings, arq, sessions, report)
        throughput = await figure_a(bench, delays)
        report.say(
            f"figure B: markAttendance -> notification row, {args.alert_students} students, API "
            "and workers in one event loop…"
        )
        rng = random.Random(args.seed)
        latency = [row for delay in delays for row in await alert_latency(bench, delay, rng)]
    report.say(
        "",
        f"Figure A: jobs through one worker process (URGENT + NORMAL workers, max_jobs="
        f"{WorkerSettings.max_jobs} each, burst mode)",
        "drain = workers started -> last job done; process CPU = this process's CPU time over "
        "the run (100 % = one core busy)",
    )
    rows = [r.cells() for r in throughput]
    report.table("figure A", THROUGHPUT, rows, left=2, formats=FORMATS)
    report.say(
        "",
        f"Figure B: markAttendance -> notification row ({args.alert_students} students, "
        f"sequential, notifications polled every {NOTIFICATION_POLL_SECONDS * 1000:.0f} ms)",
    )
    rows = [(*row.cells(), row.samples.errors) for row in latency]
    report.table("figure B", LATENCY, rows, left=2, formats=FORMATS)
    return throughput, latency


def main(argv: Sequence[str] | None = None) -> int:
    about = "Worker throughput and markAttendance-to-alert latency."
    arguments = harness.parser("jobs", about, strict=False)
    add = arguments.add_argument
    add("--jobs", type=int, default=2000, help="trivial jobs for figure A")
    add("--students", type=int, default=500, help="students of the seeded class (figure A)")
    add("--days", type=int, default=30, help="seeded school days (figure A)")
    add("--alert-students", type=int, default=30, help="students pushed over thresholds (B)")
    add("--patched-poll-delay", type=float, default=0.05, help="the patched workers' poll_delay, s")
    add("--no-patched", action="store_true", help="measure only the workers as shipped")
    add("--refresh-delay", type=int, default=1, help="statistics_refresh_delay_seconds (B)")
    add("--jitter", type=float, default=0.5, help="longest random pause before each mark, s")
    add("--timeout", type=float, default=10.0, help="seconds to wait for each notification")
    add("--seed", type=int, default=1, help="random seed for the jitter")
    args = arguments.parse_args(argv)
    if args.jobs < 1 or args.students < 1 or args.days < 1 or args.alert_students < 1:
        arguments.error("--jobs, --students, --days and --alert-students must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = Report("jobs", as_json=args.json)
    # arq's queue keys are global: a stale job in the (flushed) Redis would skew the figures
    with harness.scratch_database("jobs", redis_db=10, keep=args.keep) as db:
        settings = dataclasses.replace(
            db.settings, statistics_refresh_delay_seconds=args.refresh_delay
        )
        report.say(f"rollcall jobs benchmark: {os.cpu_count()} CPUs, {db.describe()}")
        throughput, latency = asyncio.run(benchmark(args, settings, report))
    failed = any(r.failures for r in throughput) or any(row.samples.errors for row in latency)
    return report.finish(failed=failed)


if __name__ == "__main__":
    sys.exit(main())
