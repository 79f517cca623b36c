"""Job platform benchmark: worker throughput, and how soon a mark turns into an alert.

Creates a throwaway database and flushes a Redis database of its own, then measures:

A. Jobs per second through one worker process (the URGENT worker and the NORMAL worker that
   yields to it, as ``jobs.worker.create_workers`` builds them), in burst mode: trivial jobs (one
   Redis INCR each) split across both queues, and the real ``check_thresholds`` job over a
   seeded school, one job per student and one job for the whole class.
B. Latency from ``markAttendance`` to the notification row: the API app in-process and both
   workers in the same event loop; fresh students at exactly 80 % get one absence (to 76.2 %,
   ATTENDANCE_WARNING) and then another (to 72.7 %, MAHROOM_ALERT), and the notifications table
   is polled every 10 ms until the row is there.

Each figure is taken with the workers as shipped (``WorkerSettings``: URGENT polls every
0.05 s, NORMAL every 0.5 s) and again with both patched to ``--patched-poll-delay``, to show how
much of the figure is a worker waiting to look at its queue.

Run from the repository root::

    .venv/bin/python -m benchmarks.jobs [--jobs 2000] [--alert-students 30] [--keep]

A script, not a test: it prints figures and exits 1 only when a job or request failed.
"""

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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ``python benchmarks/jobs.py`` finds the project packages

import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from arq.connections import ArqRedis, RedisSettings, create_pool  # noqa: E402
from arq.constants import result_key_prefix  # noqa: E402
from arq.worker import Function, Worker  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402
from sqlalchemy import delete, func, select  # noqa: E402

from benchmarks.foundation import (  # noqa: E402
    BenchmarkError,
    GraphQL,
    Measurement,
    load_school,
    percentile,
    scratch_database,
)
from graph.app import create_app  # noqa: E402
from jobs.platform import durable  # noqa: E402
from jobs.worker import WorkerSettings, create_workers, run_workers, shared_context  # noqa: E402
from services.bulk_seed import seed_bulk  # noqa: E402
from services.models import (  # noqa: E402
    AlertState,
    AttendanceStatus,
    Notification,
    NotificationType,
)
from services.platform.db import SessionFactory, create_engine, create_session_factory  # noqa: E402
from services.platform.settings import Settings  # noqa: E402
from services.queue import CHECK_THRESHOLDS, Queue, enqueue, schedule_threshold_check  # noqa: E402
from services.seed import DEMO_PERIODS  # noqa: E402
from tests.factories import Factory  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
SEED_PREFIX = "bench-jobs"
COUNTER_KEY = "bench:jobs:incr"
NOTIFICATION_POLL_SECONDS = 0.01
WATCH_SECONDS = 0.002  # how often the drain watcher looks at the workers' counters
HISTORY = [AttendanceStatus.PRESENT] * 16 + [AttendanceStatus.ABSENT] * 4  # 80 %: OK
# one more absence: 16/21 = 76.2 % (WARNING, below 80); another: 16/22 = 72.7 % (MAHROOM, <= 75)
STEPS = ((NotificationType.ATTENDANCE_WARNING, 1), (NotificationType.MAHROOM_ALERT, 2))

MARK = """
mutation Mark($input: MarkAttendanceInput!) {
  markAttendance(input: $input) { records { id studentId status } }
}
"""

logger = logging.getLogger("benchmarks.jobs")


# --------------------------------------------------------------------------- the trivial job


async def bench_incr(ctx: dict[str, Any], number: int) -> int:
    """The cheapest job that still touches Redis: one INCR."""
    return int(await ctx["redis"].incr(COUNTER_KEY))


FUNCTIONS: Sequence[Function] = (
    *WorkerSettings.functions,
    durable(bench_incr, timeout_seconds=10),
)


# --------------------------------------------------------------------------- figures


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
    students: int
    enqueue_seconds: float
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
    def students_per_second(self) -> float:
        return self.students / self.drain_seconds if self.drain_seconds else 0.0


def render(header: Sequence[str], rows: Sequence[Sequence[str]], left: int) -> str:
    """A fixed-width table; the first ``left`` columns are text, the rest right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(widths[i]) if i < left else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def throughput_table(results: Sequence[Throughput]) -> str:
    header = (
        "workload",
        "worker poll_delay",
        "jobs",
        "enqueue/s",
        "drain s",
        "jobs/s",
        "students/s",
        "run s",
        "process CPU",
        "failed",
    )
    rows = [
        (
            r.workload,
            r.poll,
            str(r.jobs),
            f"{r.jobs / r.enqueue_seconds:.0f}" if r.enqueue_seconds else "-",
            f"{r.drain_seconds:.2f}",
            f"{r.jobs_per_second:.0f}",
            f"{r.students_per_second:.0f}" if r.students else "-",
            f"{r.run_seconds:.2f}",
            f"{100 * r.cpu_seconds / r.run_seconds:.0f} %" if r.run_seconds else "-",
            str(r.failed + r.retried + (1 if r.error else 0)),
        )
        for r in results
    ]
    return render(header, rows, left=2)


def latency_table(measurements: Sequence[Measurement]) -> str:
    header = (
        "measure",
        "worker poll_delay",
        "n",
        "mean ms",
        "p50 ms",
        "p95 ms",
        "max ms",
        "errors",
    )
    rows = []
    for m in measurements:
        samples = m.samples or [float("nan")]
        rows.append(
            (
                m.operation,
                m.mode,
                str(len(m.samples)),
                f"{sum(samples) / len(samples):.1f}",
                f"{percentile(samples, 50):.1f}",
                f"{percentile(samples, 95):.1f}",
                f"{max(samples):.1f}",
                str(m.errors),
            )
        )
    return render(header, rows, left=2)


def describe(m: Measurement) -> str:
    if not m.samples:
        return f"no samples, {m.errors} errors ({m.first_error})"
    line = (
        f"n={len(m.samples)} p50={percentile(m.samples, 50):.1f} ms "
        f"p95={percentile(m.samples, 95):.1f} ms max={max(m.samples):.1f} ms"
    )
    if m.errors:
        line += f" ERRORS={m.errors} ({m.first_error})"
    return line


# --------------------------------------------------------------------------- workers


def patch_poll_delay(workers: Sequence[Worker], poll_delay: float | None) -> None:
    """Override the shipped poll delays of both workers."""
    if poll_delay is not None:
        for worker in workers:
            worker.poll_delay_s = poll_delay


def finished(worker: Worker) -> int:
    return worker.jobs_complete + worker.jobs_failed


async def drain(
    settings: Settings, result: Throughput, *, poll_delay: float | None, expected: dict[str, int]
) -> Throughput:
    """Both workers in burst mode until the queues are empty; fills in ``result``'s timings."""
    async with shared_context(settings, retry_backoff_seconds=0.05) as shared:
        workers = create_workers(settings, shared, functions=FUNCTIONS, cron_jobs=(), burst=True)
        patch_poll_delay(workers, poll_delay)
        started = time.perf_counter()
        cpu_started = time.process_time()
        task = asyncio.create_task(run_workers(workers))
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


def report(result: Throughput) -> None:
    queues = ", ".join(
        f"{queue.rsplit(':', 1)[-1]} drained at {seconds:.2f} s"
        for queue, seconds in sorted(result.drained_at.items(), key=lambda item: item[1])
    )
    line = (
        f"  [{result.poll}] {result.workload}: {result.jobs} job(s) in "
        f"{result.drain_seconds:.2f} s = {result.jobs_per_second:.0f} jobs/s "
        f"({queues}; burst run {result.run_seconds:.2f} s)"
    )
    if result.failed or result.retried or result.error:
        line += f" FAILED={result.failed} RETRIED={result.retried} {result.error or ''}"
    print(line, flush=True)


# --------------------------------------------------------------------------- figure A


async def trivial_jobs(
    settings: Settings,
    arq: ArqRedis,
    session_factory: SessionFactory,
    *,
    jobs: int,
    poll_delay: float | None,
) -> Throughput:
    await arq.delete(COUNTER_KEY)
    expected = {Queue.URGENT.value: 0, Queue.NORMAL.value: 0}
    started = time.perf_counter()
    async with session_factory() as session:  # used only if Redis refused (the outbox)
        for number in range(jobs):
            queue = Queue.URGENT if number % 2 == 0 else Queue.NORMAL
            await enqueue(arq, session, bench_incr.__name__, number, queue=queue)
            expected[queue.value] += 1
    result = Throughput(
        workload="bench_incr (1 Redis INCR)",
        poll=poll_label(poll_delay),
        jobs=jobs,
        students=0,
        enqueue_seconds=time.perf_counter() - started,
    )
    await drain(settings, result, poll_delay=poll_delay, expected=expected)
    counted = int(await arq.get(COUNTER_KEY) or 0)
    if counted != jobs and result.error is None:
        result.error = f"counter is {counted}, expected {jobs}"
    return result


async def reset_alert_states(session_factory: SessionFactory, tenant_id: uuid.UUID) -> None:
    """Every check run starts from no remembered standing, so each does the same work."""
    async with session_factory() as session, session.begin():
        await session.execute(delete(AlertState).where(AlertState.tenant_id == tenant_id))


async def threshold_jobs(
    settings: Settings,
    arq: ArqRedis,
    session_factory: SessionFactory,
    *,
    tenant_id: uuid.UUID,
    student_ids: Sequence[uuid.UUID],
    batch: int,
    poll_delay: float | None,
) -> Throughput:
    await reset_alert_states(session_factory, tenant_id)
    groups = [student_ids[start : start + batch] for start in range(0, len(student_ids), batch)]
    started = time.perf_counter()
    async with session_factory() as session:
        for group in groups:
            await schedule_threshold_check(arq, session, tenant_id=tenant_id, student_ids=group)
    label = "1 student" if batch == 1 else f"{batch} students"
    result = Throughput(
        workload=f"{CHECK_THRESHOLDS} ({label} per job)",
        poll=poll_label(poll_delay),
        jobs=len(groups),
        students=len(student_ids),
        enqueue_seconds=time.perf_counter() - started,
    )
    await drain(settings, result, poll_delay=poll_delay, expected={Queue.URGENT.value: len(groups)})
    async with session_factory() as session:
        checked = await session.scalar(
            select(func.count()).select_from(AlertState).where(AlertState.tenant_id == tenant_id)
        )
    if checked != len(student_ids) and result.error is None:
        result.error = f"{checked} of {len(student_ids)} students have an alert state"
    return result


async def figure_a(
    settings: Settings,
    arq: ArqRedis,
    session_factory: SessionFactory,
    args: argparse.Namespace,
    delays: Sequence[float | None],
) -> list[Throughput]:
    print(
        f"seeding 1 class x {args.students} students x {args.days} days x {DEMO_PERIODS} periods…",
        flush=True,
    )
    started = time.perf_counter()
    (tenant_id,) = await seed_bulk(
        session_factory=session_factory,
        today=datetime.now(UTC).date(),
        schools=1,
        classes=1,
        students=args.students,
        days=args.days,
        periods=DEMO_PERIODS,
        prefix=SEED_PREFIX,
    )
    school = await load_school(session_factory, tenant_id)
    print(f"  seeded in {time.perf_counter() - started:.1f} s", flush=True)
    print("figure A: jobs/s through one worker process (burst mode)…", flush=True)
    results: list[Throughput] = []
    for poll_delay in delays:
        results.append(
            await trivial_jobs(
                settings, arq, session_factory, jobs=args.jobs, poll_delay=poll_delay
            )
        )
        report(results[-1])
        for batch in (1, len(school.student_ids)):
            results.append(
                await threshold_jobs(
                    settings,
                    arq,
                    session_factory,
                    tenant_id=tenant_id,
                    student_ids=school.student_ids,
                    batch=batch,
                    poll_delay=poll_delay,
                )
            )
            report(results[-1])
    return results


# --------------------------------------------------------------------------- figure B


async def wait_for_notification(
    session_factory: SessionFactory,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    kind: NotificationType,
    within_seconds: float,
) -> bool:
    """Poll the notifications table every 10 ms until the row exists; False on timeout."""
    query = (
        select(Notification.id)
        .where(
            Notification.tenant_id == tenant_id,
            Notification.user_id == user_id,
            Notification.type == kind,
        )
        .limit(1)
    )
    deadline = time.perf_counter() + within_seconds
    while True:
        async with session_factory() as session:
            if await session.scalar(query) is not None:
                return True
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(NOTIFICATION_POLL_SECONDS)


async def job_timings(arq: ArqRedis, function: str) -> tuple[list[float], list[float]]:
    """Queue wait (enqueued -> started) and run time of every kept result of ``function``, ms."""
    waits: list[float] = []
    runs: list[float] = []
    for result in await arq.all_job_results():
        if result.function == function:
            waits.append((result.start_time - result.enqueue_time).total_seconds() * 1000)
            runs.append((result.finish_time - result.start_time).total_seconds() * 1000)
    return waits, runs


async def settle(arq: ArqRedis, *, within_seconds: float) -> None:
    """Wait until both queues are empty (a job stays in its queue until it has finished)."""
    deadline = time.perf_counter() + within_seconds
    while any([await arq.zcard(queue.value) for queue in Queue]):
        if time.perf_counter() > deadline:
            logger.warning("queues still busy after %.0f s", within_seconds)
            return
        await asyncio.sleep(0.02)


async def forget_results(arq: ArqRedis) -> None:
    keys = await arq.keys(result_key_prefix + "*")
    for start in range(0, len(keys), 1000):
        await arq.delete(*keys[start : start + 1000])


def mark_variables(classroom: str, subject: str, student: str, day: date, period: int) -> Any:
    return {
        "input": {
            "classroomId": classroom,
            "date": day.isoformat(),
            "period": period,
            "subjectId": subject,
            "marks": [{"studentId": student, "status": "ABSENT"}],
        }
    }


async def alert_latency(
    settings: Settings,
    arq: ArqRedis,
    session_factory: SessionFactory,
    args: argparse.Namespace,
    *,
    poll_delay: float | None,
    rng: random.Random,
) -> list[Measurement]:
    mode = poll_label(poll_delay)
    factory = Factory(session_factory=session_factory, settings=settings)
    # one extra student warms the whole path (API, enqueue, job, notification) unrecorded
    school = await factory.school(students=args.alert_students + 1)
    today = datetime.now(UTC).date()  # factory tenants keep the default time zone, UTC
    first_day = today - timedelta(days=len(HISTORY) + 30)
    for student in school.students:
        await factory.records(
            school,
            student,
            [(first_day + timedelta(days=n), 1, status) for n, status in enumerate(HISTORY)],
        )
    warmup, *students = school.students
    classroom = str(school.classrooms[0].id)
    subject = str(school.subjects[0].id)
    token = school.token(school.teachers[0])
    mark = Measurement("markAttendance round trip", mode, None)
    latencies = {kind: Measurement(f"mark -> {kind.value} row", mode, None) for kind, _ in STEPS}
    await forget_results(arq)

    app = create_app(settings)
    async with (
        shared_context(settings) as shared,
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://bench"
        ) as client,
    ):
        graphql = GraphQL(client)
        workers = create_workers(settings, shared, functions=FUNCTIONS, cron_jobs=())
        patch_poll_delay(workers, poll_delay)
        running = asyncio.create_task(run_workers(workers))
        try:
            while not all("redis" in worker.ctx for worker in workers):  # pools are up
                if running.done():
                    await running
                    raise BenchmarkError("the workers stopped before the first mark")
                await asyncio.sleep(0.01)
            _, _, error = await graphql.timed(
                MARK, mark_variables(classroom, subject, str(warmup.id), today, 1), token
            )
            assert warmup.user_id is not None
            if error is not None or not await wait_for_notification(
                session_factory,
                tenant_id=school.tenant.id,
                user_id=warmup.user_id,
                kind=NotificationType.ATTENDANCE_WARNING,
                within_seconds=args.timeout,
            ):
                raise BenchmarkError(f"the warm-up mark raised no warning: {error or 'timeout'}")
            for kind, period in STEPS:
                for student in students:
                    assert student.user_id is not None
                    # start at a random point of the workers' poll cycle, as real marks do
                    await asyncio.sleep(rng.uniform(0, args.jitter))
                    variables = mark_variables(classroom, subject, str(student.id), today, period)
                    started = time.perf_counter()
                    elapsed, _, error = await graphql.timed(MARK, variables, token)
                    mark.record(elapsed, error)
                    if error is not None:
                        latencies[kind].errors += 1
                        latencies[kind].first_error = latencies[kind].first_error or error
                        continue
                    found = await wait_for_notification(
                        session_factory,
                        tenant_id=school.tenant.id,
                        user_id=student.user_id,
                        kind=kind,
                        within_seconds=args.timeout,
                    )
                    latency = (time.perf_counter() - started) * 1000
                    latencies[kind].record(
                        latency, None if found else f"no {kind.value} within {args.timeout:g} s"
                    )
                print(f"  [{mode}] {latencies[kind].operation}: {describe(latencies[kind])}")
            # let the last check (which may still be between its commit and its result) and the
            # debounced statistics refresh finish, so no job is cancelled and re-run later
            await settle(arq, within_seconds=settings.statistics_refresh_delay_seconds + 10)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    waits, runs = await job_timings(arq, CHECK_THRESHOLDS)
    wait = Measurement(f"{CHECK_THRESHOLDS} queue wait (arq)", mode, None, samples=waits)
    run = Measurement(f"{CHECK_THRESHOLDS} run time (arq)", mode, None, samples=runs)
    print(f"  [{mode}] {mark.operation}: {describe(mark)}")
    print(f"  [{mode}] {wait.operation}: {describe(wait)}")
    print(f"  [{mode}] {run.operation}: {describe(run)}", flush=True)
    return [*latencies.values(), mark, wait, run]


async def figure_b(
    settings: Settings,
    arq: ArqRedis,
    session_factory: SessionFactory,
    args: argparse.Namespace,
    delays: Sequence[float | None],
) -> list[Measurement]:
    print(
        f"figure B: markAttendance -> notification row, {args.alert_students} students, API and "
        "workers in one event loop…",
        flush=True,
    )
    rng = random.Random(args.seed)
    results: list[Measurement] = []
    for poll_delay in delays:
        results += await alert_latency(
            settings, arq, session_factory, args, poll_delay=poll_delay, rng=rng
        )
    return results


# --------------------------------------------------------------------------- main


async def benchmark(
    args: argparse.Namespace, settings: Settings
) -> tuple[list[Throughput], list[Measurement]]:
    assert settings.database_url is not None and settings.redis_url is not None
    async with aioredis.Redis.from_url(settings.redis_url) as redis:
        await redis.flushdb()
    print(
        f"flushed Redis {settings.redis_url} (arq's queue keys are global: a stale job there "
        "would skew the figures)",
        flush=True,
    )
    delays: list[float | None] = [None]
    if not args.no_patched:
        delays.append(args.patched_poll_delay)
    engine = create_engine(settings.database_url, pool_max=10)
    session_factory = create_session_factory(engine)
    arq = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        throughput = await figure_a(settings, arq, session_factory, args, delays)
        latency = await figure_b(settings, arq, session_factory, args, delays)
    finally:
        if not args.keep:
            await arq.flushdb()
            print(f"flushed Redis {settings.redis_url} again", flush=True)
        await arq.aclose()
        await engine.dispose()
    print()
    print(
        f"Figure A: jobs through one worker process (URGENT + NORMAL workers, max_jobs="
        f"{WorkerSettings.max_jobs} each, burst mode)\n"
        "drain = workers started -> last job done; process CPU = this process's CPU time over "
        "the run (100 % = one core busy)"
    )
    print(throughput_table(throughput))
    print()
    print(
        f"Figure B: markAttendance -> notification row ({args.alert_students} students, "
        f"sequential, notifications polled every {NOTIFICATION_POLL_SECONDS * 1000:.0f} ms)"
    )
    print(latency_table(latency))
    return throughput, latency


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.jobs",
        description="Worker throughput and markAttendance-to-alert latency.",
    )
    parser.add_argument("--jobs", type=int, default=2000, help="trivial jobs for figure A")
    parser.add_argument(
        "--students", type=int, default=500, help="students of the seeded class (figure A)"
    )
    parser.add_argument("--days", type=int, default=30, help="seeded school days (figure A)")
    parser.add_argument(
        "--alert-students", type=int, default=30, help="students pushed over thresholds (B)"
    )
    parser.add_argument(
        "--patched-poll-delay",
        type=float,
        default=0.05,
        help="poll_delay of the patched workers, in seconds (arq's default is 0.5)",
    )
    parser.add_argument(
        "--no-patched", action="store_true", help="measure only the workers as shipped"
    )
    parser.add_argument(
        "--refresh-delay",
        type=int,
        default=1,
        help="statistics_refresh_delay_seconds while marking (figure B)",
    )
    parser.add_argument(
        "--jitter",
        type=float,
        default=0.5,
        help="random pause before each mark, up to this many seconds (spreads marks over the "
        "workers' poll cycle)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for each notification"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and Redis data")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the jitter")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.students < 1 or args.days < 1 or args.alert_students < 1:
        parser.error("--jobs, --students, --days and --alert-students must be at least 1")
    if args.patched_poll_delay < 0 or args.jitter < 0 or args.timeout <= 0:
        parser.error("--patched-poll-delay and --jitter must not be negative, --timeout positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    with scratch_database(
        "rollcall_bench_jobs", redis_default=DEFAULT_REDIS_URL, keep=args.keep
    ) as db:
        settings = dataclasses.replace(
            db.settings, statistics_refresh_delay_seconds=args.refresh_delay
        )
        print(
            f"rollcall jobs benchmark: {os.cpu_count()} CPUs, database {db.name}, "
            f"Redis {settings.redis_url}"
        )
        throughput, latency = asyncio.run(benchmark(args, settings))
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    failed = any(r.failed or r.retried or r.error for r in throughput) or any(
        m.errors for m in latency
    )
    if failed:
        print("some jobs or requests FAILED (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
