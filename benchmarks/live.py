"""Live subscriptions: one class of subscribers over two API processes, marked a few times;
latency from the mark's commit to each receipt, and server memory per idle connection.
What it does and how to read it: benchmarks/README.md."""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import math
import os
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import httpx
import redis.asyncio as aioredis

from benchmarks import harness
from benchmarks.harness import BenchmarkError, GraphQL, Report, School, Teacher, percentile
from rollcall.live_client import Closed, Completed, OperationError
from rollcall.processes import ServerProcess
from services.attendance import MAX_MARKS_PER_CALL
from services.live import MarksEvent, classroom_channel
from services.platform.codec import decode

PROCESSES = 2
PERIODS_PER_DAY = 8
READY_TIMEOUT = 120.0  # seconds for every listener to show up in /health/ready
WARMUP_CONNECTIONS = 3  # per process, opened and closed before the first RSS reading
WARMUP_DAYS_BACK = 60  # the warm-up marks' date, well before any round's
TARGET_P99 = 200.0  # ms
TARGET_KB = 100.0  # per idle connection

SUBSCRIPTION = "subscription { attendanceUpdated { studentId status markedAt } }"
MARK = """
mutation Mark($input: MarkAttendanceInput!) { markAttendance(input: $input) { records { id } } }
"""
STATUSES = ("PRESENT", "ABSENT", "SICK", "LEAVE")
NOTE = (
    "(commit: the server's clock right after the mark's transaction committed, carried in the "
    "published event; the target is judged on commit -> receipt. markedAt is PostgreSQL now() at "
    "the transaction's start, so markedAt -> receipt also counts the mutation's own work. "
    "'published' is when this script's own Redis subscriber saw the marks, after the commit and "
    "the cache invalidation. Receipt: when this client's reader took the message off the socket. "
    "KB = 1,024 bytes of RSS.)"
)


# --------------------------------------------------------------------------- servers


async def live_reports(https: Sequence[httpx.AsyncClient]) -> list[dict[str, Any]]:
    """Each process's ``live`` section of /health/ready: connections, listeners, delivered…"""
    responses = await asyncio.gather(*(http.get("/health/ready") for http in https))
    return [response.json()["live"] for response in responses]


async def wait_live(
    https: Sequence[httpx.AsyncClient], expected: Sequence[int], *, within: float
) -> float:
    """Until every process reports ``expected`` connections and listeners; the seconds taken."""
    started = time.perf_counter()
    while True:
        counts = [(r["connections"], r["listeners"]) for r in await live_reports(https)]
        if all(c == (n, n) for c, n in zip(counts, expected, strict=True)):
            return time.perf_counter() - started
        if time.perf_counter() > started + within:
            raise BenchmarkError(f"(connections, listeners) stayed {counts}, not {list(expected)}")
        await asyncio.sleep(0.05)


async def mark_class(
    graphql: GraphQL, teacher: Teacher, statuses: Mapping[str, str], day: date, period: int
) -> None:
    """The teacher marks every student (in calls of at most MAX_MARKS_PER_CALL)."""
    marks = list(statuses.items())
    for start in range(0, len(marks), MAX_MARKS_PER_CALL):
        chunk = dict(marks[start : start + MAX_MARKS_PER_CALL])
        variables = {"input": harness.mark_input(teacher, day, period, chunk)}
        data = await graphql.data(MARK, variables, teacher.token)
        if len(data["markAttendance"]["records"]) != len(chunk):
            raise BenchmarkError(f"markAttendance failed: {str(data)[:300]}")


async def warm_up(server: ServerProcess, graphql: GraphQL, school: School) -> None:
    """One GraphQL query, and a few connections that subscribe as the benchmark's do and get
    one event each (a mark made through this process, well before the rounds' dates), closed
    again: first-call costs of the whole path count before the first RSS reading."""
    teacher = school.teachers[0]
    await graphql.data("{ __typename }", token=teacher.token)
    students = school.students[:WARMUP_CONNECTIONS]
    held = [Subscriber(server.ws_url, token, student_id=str(s)) for s, token in students]
    async with harness.holding(held, SUBSCRIPTION, concurrency=len(held)):
        if failed := [s.error for s in held if s.error]:
            raise BenchmarkError(f"a warm-up connection failed: {failed[0]}")
        for s in held:
            s.stamp()
        await wait_live([graphql.client], [len(held)], within=30)
        day = datetime.now(UTC).date() - timedelta(days=WARMUP_DAYS_BACK)
        marks = dict.fromkeys((s.student_id for s in held), "PRESENT")
        await mark_class(graphql, teacher, marks, day, 1)
        receipts = await asyncio.gather(*(s.receive("PRESENT", within=10) for s in held))
        if problems := [r.problem for r in receipts if r.problem]:
            raise BenchmarkError(f"a warm-up event was {problems[0]}")


@contextlib.asynccontextmanager
async def publishes(redis_url: str, channel: str) -> AsyncIterator[list[tuple[float, float]]]:
    """This script's own subscription to the classroom's Redis channel: for each publish, when
    it reached a Redis subscriber (as the API processes' hubs see it) and its committedAt."""
    seen: list[tuple[float, float]] = []  # epoch seconds
    async with aioredis.Redis.from_url(redis_url) as redis, redis.pubsub() as pubsub:
        await pubsub.subscribe(channel)

        async def read() -> None:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    event = decode(MarksEvent, message["data"])
                    seen.append((time.time(), event.committed_at.timestamp()))

        reader = asyncio.create_task(read())
        try:
            yield seen
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


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
        count = self.qsize()
        while not self.empty():
            self.get_nowait()
        self.arrivals.clear()
        return count


class Receipt(NamedTuple):
    """What one subscriber got in one round: when the reader took the message off the socket
    and when the waiting task had it (time.time()), the event's markedAt, what was wrong."""

    arrived: float = math.nan
    taken: float = math.nan
    marked_at: float | None = None
    problem: str | None = None  # "missed…" or what was wrong


@dataclass
class Subscriber(harness.Subscription):
    student_id: str = ""
    process: int = 0
    call: int = 0  # which markAttendance call of a round marks this student
    queue: StampedQueue = field(default_factory=StampedQueue)

    def stamp(self) -> None:
        """Route the subscription's messages to ``queue``: call before anything is marked."""
        assert self.client is not None
        self.client._operations[self.operation] = self.queue

    async def receive(self, expected: str, within: float) -> Receipt:
        assert self.client is not None
        try:
            payload = await self.client.next(self.operation, within=within)
        except TimeoutError:
            return Receipt(problem="missed")
        except (OperationError, Completed, Closed) as error:
            self.queue.arrivals.clear()
            return Receipt(problem=f"missed: {type(error).__name__} {error}")
        taken = time.time()
        arrived = self.queue.arrivals.popleft() if self.queue.arrivals else taken
        event = (payload.get("data") or {}).get("attendanceUpdated")
        if payload.get("errors") or not event:
            return Receipt(arrived, taken, problem=f"error payload: {str(payload)[:200]}")
        marked_at = datetime.fromisoformat(event["markedAt"]).timestamp()
        wrong = None
        if event["studentId"] != self.student_id:
            wrong = f"wrong student: {event['studentId']} to {self.student_id}"
        elif event["status"] != expected:
            wrong = f"wrong status: {event['status']}, marked {expected}"
        return Receipt(arrived, taken, marked_at, wrong)


# --------------------------------------------------------------------------- rounds


@dataclass
class Round:
    number: int
    day: date
    period: int
    via: int  # the process that took the mutation
    mutation_ms: float = math.nan
    # milliseconds per receipt: from_marked_at, from_commit, from_published, from_response,
    # dispatch (reader to waiting task), and from_published by "process <n>"; per call:
    # marked_to_published
    ms: collections.defaultdict[str, list[float]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )
    missed: int = 0
    wrong: int = 0
    extra: int = 0  # events beyond the one expected
    problems: list[str] = field(default_factory=list)
    cpu: str = ""  # CPU ms from the mark to the last receipt, and the hubs' counters

    def describe(self, total: int) -> str:
        published = ", ".join(f"{ms:.0f}" for ms in self.ms["marked_to_published"]) or "-"
        by_process = "; ".join(
            f"{name} {spread(self.ms[name], 50, 99)} ms"
            for name in sorted(self.ms)
            if name.startswith("process")
        )
        return (
            f"  round {self.number} ({self.day} period {self.period}, marked via process "
            f"{self.via + 1}): mutation {self.mutation_ms:.0f} ms; received "
            f"{len(self.ms['from_marked_at'])}/{total}; missed {self.missed}, wrong {self.wrong}, "
            f"extra {self.extra}\n"
            f"    markedAt -> receipt {spread(self.ms['from_marked_at'], 50, 99, 100)} ms = "
            f"markedAt -> published {published} ms + published -> receipt "
            f"{spread(self.ms['from_published'], 50, 99, 100)} ms\n"
            f"    published -> receipt by process: {by_process or '-'}\n"
            f"    CPU ms (mark to last receipt): {self.cpu}"
        )


def spread(samples: Sequence[float], *quantiles: int) -> str:
    """``p50 1.0 p99 2.0 max 3.0``: the percentiles asked for (100 is the max)."""
    return " ".join(
        f"{'max' if q == 100 else f'p{q}'} {percentile(samples, q):.1f}" for q in quantiles
    )


async def run_round(
    r: Round,
    subscribers: Sequence[Subscriber],
    servers: Sequence[tuple[ServerProcess, GraphQL]],
    teacher: Teacher,
    args: argparse.Namespace,
    statuses: Mapping[str, str],
    published: list[tuple[float, float]],
) -> None:
    """Mark the class once through process ``r.via`` and fill ``r`` in with what arrived."""
    https = [graphql.client for _, graphql in servers]
    hubs_before = await live_reports(https)
    published.clear()
    receivers = [
        asyncio.create_task(s.receive(statuses[s.student_id], args.timeout)) for s in subscribers
    ]
    await asyncio.sleep(0.05)  # every receiver is waiting before the mark
    cpu_before = [harness.cpu_seconds(server.pid) for server, _ in servers]
    client_before = time.process_time()
    sent = time.time()
    try:
        await mark_class(servers[r.via][1], teacher, statuses, r.day, r.period)
    except BaseException:
        for task in receivers:
            task.cancel()
        await asyncio.gather(*receivers, return_exceptions=True)
        raise
    responded = time.time()
    r.mutation_ms = (responded - sent) * 1000
    receipts = await asyncio.gather(*receivers)
    client_ms = (time.process_time() - client_before) * 1000
    servers_ms = [
        (harness.cpu_seconds(s.pid) - b) * 1000
        for (s, _), b in zip(servers, cpu_before, strict=True)
    ]
    await asyncio.sleep(args.quiet)  # anything more that arrives now is an extra event
    r.extra = sum(s.queue.drain() for s in subscribers)
    seen = list(published)
    if len(seen) != (calls := math.ceil(len(subscribers) / MAX_MARKS_PER_CALL)):
        r.problems.append(f"saw {len(seen)} publishes on Redis, expected {calls}")
    marked_at: dict[int, float] = {}  # each call's, from its first receipt
    for s, (arrived, taken, at, problem) in zip(subscribers, receipts, strict=True):
        if problem is not None:
            r.problems.append(problem)
            r.missed += problem.startswith("missed")
            r.wrong += not problem.startswith("missed")
        if at is None:
            continue
        marked_at.setdefault(s.call, at)
        if s.call < len(seen):
            r.ms["from_published"].append(fan_out := (arrived - seen[s.call][0]) * 1000)
            r.ms[f"process {s.process + 1}"].append(fan_out)
            r.ms["from_commit"].append((arrived - seen[s.call][1]) * 1000)
        r.ms["from_marked_at"].append((arrived - at) * 1000)
        r.ms["from_response"].append((arrived - responded) * 1000)
        r.ms["dispatch"].append((taken - arrived) * 1000)
    r.ms["marked_to_published"] = [
        (seen[call][0] - at) * 1000 for call, at in sorted(marked_at.items()) if call < len(seen)
    ]
    hubs = list(zip(hubs_before, await live_reports(https), strict=True))
    r.cpu = (
        f"servers {' + '.join(f'{ms:.0f}' for ms in servers_ms)}, client {client_ms:.0f}; hub "
        f"delivered {[a['delivered'] - b['delivered'] for b, a in hubs]}, "
        f"dropped {[a['dropped'] - b['dropped'] for b, a in hubs]}"
    )


# --------------------------------------------------------------------------- report


Row = tuple[str, str, str, str]


def figure_rows(
    subscribers: Sequence[Subscriber],
    opening: tuple[float, float],
    rounds: Sequence[Round],
    memory_kb: Sequence[float],
    args: argparse.Namespace,
) -> list[Row]:
    """(figure, value, target, result) rows; ``opening`` is (seconds to connect all, seconds
    until every listener was reported)."""

    def every(name: str) -> list[float]:
        return [ms for r in rounds for ms in r.ms[name]]

    def row(name: str, value: str, target: str = "-", passed: bool | None = None) -> Row:
        return name, value, target, harness.verdict(passed)

    def ms(name: str, samples: str | list[float], q: int) -> Row:
        values = every(samples) if isinstance(samples, str) else samples
        return row(name, f"{percentile(values, q):.1f} ms")

    connect, listen = opening
    counts = [sum(s.process == p for s in subscribers) for p in range(len(memory_kb))]
    times = [s.seconds for s in subscribers]
    p99 = percentile(every("from_commit"), 99)
    missed, wrong = sum(r.missed for r in rounds), sum(r.wrong + r.extra for r in rounds)
    before = every("marked_to_published")
    kb = f"< {TARGET_KB:.0f} KB"
    one = f"{percentile(times, 50) * 1000:.0f} / {max(times) * 1000:.0f} ms" if times else "-"
    mutation = f"{sum(r.mutation_ms for r in rounds) / len(rounds):.0f} ms"
    publish = f"{sum(before) / len(before) if before else math.nan:.1f} ms"
    memory = [*memory_kb, sum(memory_kb) / len(memory_kb)]
    processes = [f"process {index + 1}" for index in range(len(memory_kb))]
    return [
        row("subscribers per process", " / ".join(map(str, counts))),
        row(f"connect, init and subscribe all ({args.concurrency} at a time)", f"{connect:.2f} s"),
        row("  then until every listener was reported", f"{listen:.2f} s"),
        row("  one connection, p50 / max", one),
        row(f"mutation round trip ({sum(counts)} marks), mean", mutation),
        row(f"events received ({len(rounds)} rounds)", str(len(every("from_marked_at")))),
        ms("commit -> receipt p50", "from_commit", 50),
        ms("commit -> receipt p95", "from_commit", 95),
        row("commit -> receipt p99", f"{p99:.1f} ms", f"< {TARGET_P99:.0f} ms", p99 < TARGET_P99),
        *(ms(f"  round {r.number} p99", r.ms["from_commit"], 99) for r in rounds),
        ms("commit -> receipt max", "from_commit", 100),
        ms("markedAt -> receipt p50", "from_marked_at", 50),
        ms("markedAt -> receipt p99", "from_marked_at", 99),
        row("  of which markedAt -> published, mean", publish),
        ms("  published -> receipt p50", "from_published", 50),
        ms("  published -> receipt p99 (lower bound)", "from_published", 99),
        ms("  published -> receipt max", "from_published", 100),
        ms("HTTP response -> receipt p50", "from_response", 50),
        ms("client reader -> waiting task p99", "dispatch", 99),
        row(f"missed (nothing within {args.timeout:g} s)", str(missed), "0", missed == 0),
        row("wrong or extra events", str(wrong), "0", wrong == 0),
        *(
            row(f"memory per idle connection, {who}", f"{value:.1f} KB", kb, value < TARGET_KB)
            for who, value in zip([*processes, "mean"], memory, strict=True)
        ),
    ]


# --------------------------------------------------------------------------- main


def print_logs(report: Report, servers: Sequence[ServerProcess], lines: int) -> None:
    for index, server in enumerate(servers):
        report.say(f"\n--- server process {index + 1} (pid {server.pid}) log tail ---")
        report.say(server.log_tail(lines))


async def benchmark(args: argparse.Namespace, db: harness.ScratchDatabase, report: Report) -> bool:
    """The whole run; whether a connection failed or an event was missed or wrong."""
    started = time.perf_counter()
    school = await harness.seed_school(
        db.settings, classes=1, students_per_class=args.subscribers, days=0, periods=PERIODS_PER_DAY
    )
    seconds = time.perf_counter() - started
    report.say(f"seeded one classroom of {args.subscribers} students in {seconds:.1f} s")
    async with harness.api_processes(harness.server_env(db.settings), PROCESSES) as servers:
        try:
            return await measure(args, db.redis_url, report, school, servers)
        except BaseException:
            print_logs(report, [server for server, _ in servers], 40)
            raise


async def measure(
    args: argparse.Namespace,
    redis_url: str,
    report: Report,
    school: School,
    servers: Sequence[tuple[ServerProcess, GraphQL]],
) -> bool:
    processes = [server for server, _ in servers]
    https = [graphql.client for _, graphql in servers]
    for index, (server, graphql) in enumerate(servers):
        report.say(f"process {index + 1}: pid {server.pid} at {server.base_url}")
        await warm_up(server, graphql, school)
    await wait_live(https, [0] * len(servers), within=30)
    await asyncio.sleep(args.idle)
    rss_before = [harness.status_kb(server.pid)["VmRSS"] for server in processes]
    subscribers = [
        Subscriber(
            processes[index % len(servers)].ws_url,
            token,
            student_id=str(student_id),
            process=index % len(servers),
            call=index // MAX_MARKS_PER_CALL,
        )
        for index, (student_id, token) in enumerate(school.students)
    ]
    counts = [sum(s.process == p for s in subscribers) for p in range(len(servers))]
    report.say(f"opening {len(subscribers)} connections, {args.concurrency} at a time…")
    opened = time.perf_counter()
    async with harness.holding(subscribers, SUBSCRIPTION, concurrency=args.concurrency):
        connect_seconds = time.perf_counter() - opened
        if failures := [s for s in subscribers if s.error]:
            raise BenchmarkError(
                f"{len(failures)} of {len(subscribers)} connections failed; first: "
                f"{failures[0].error}"
            )
        for s in subscribers:
            s.stamp()
        listen_seconds = await wait_live(https, counts, within=READY_TIMEOUT)
        report.say(
            f"  all subscribed in {connect_seconds:.2f} s; every listener reported "
            f"{listen_seconds:.2f} s later; idling {args.idle:g} s"
        )
        await asyncio.sleep(args.idle)
        memory_kb = []
        for index, (server, before) in enumerate(zip(processes, rss_before, strict=True)):
            after = harness.status_kb(server.pid)["VmRSS"]
            memory_kb.append((after - before) / counts[index])
            report.say(
                f"  process {index + 1} RSS {before / 1024:.1f} MB -> {after / 1024:.1f} MB "
                f"({counts[index]} idle connections: {memory_kb[index]:.1f} KB each)"
            )
        rng, teacher = random.Random(args.seed), school.teachers[0]
        rounds: list[Round] = []
        channel = classroom_channel(school.tenant_id, teacher.classroom_id).name
        report.say(f"marking the class {args.rounds} times…")
        async with publishes(redis_url, channel) as published:
            for index in range(args.rounds):
                day = datetime.now(UTC).date() - timedelta(days=1 + index // PERIODS_PER_DAY)
                r = Round(index + 1, day, index % PERIODS_PER_DAY + 1, via=index % len(servers))
                statuses = {s.student_id: rng.choice(STATUSES) for s in subscribers}
                await run_round(r, subscribers, servers, teacher, args, statuses, published)
                rounds.append(r)
                report.say(r.describe(len(subscribers)))
                for problem, times in collections.Counter(r.problems).most_common(5):
                    report.say(f"    {times} x {problem}")
                await asyncio.sleep(args.pause)
        if dropped := [s.client for s in subscribers if s.dropped and s.client]:
            first = dropped[0].closed.result()
            report.say(f"  {len(dropped)} connections were closed by the server; first: {first}")
        for index, live in enumerate(await live_reports(https)):
            report.say(f"  process {index + 1} live report: {live}")

    problems = [harness.log_problems(server) for server in processes]
    for index, lines in enumerate(problems):
        if lines:
            report.say(f"\nprocess {index + 1} logged {len(lines)} warnings/errors; the first:")
            report.say(*(f"  {line}" for line in lines[:10]))
    rows = figure_rows(subscribers, (connect_seconds, listen_seconds), rounds, memory_kb, args)
    failed = bool(dropped) or any(r.missed or r.wrong or r.extra for r in rounds)
    if failed or any(problems):
        print_logs(report, processes, 30)
    report.table("figures", ("figure", "value", "target", "result"), rows)
    for name, value, target, result in rows:
        if target != "-":
            report.check(name.strip(), result == "PASS", f"{value}, target {target}", say=False)
    report.say(NOTE)
    return failed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    arguments = harness.parser(
        "live", "Latency and memory of live subscriptions over two API processes."
    )
    for flag, kind, default, text in (
        ("--subscribers", int, 1000, "students of the class, one connection each"),
        ("--rounds", int, 3, "times the class is marked"),
        ("--concurrency", int, 50, "connections being opened at once"),
        ("--timeout", float, 10.0, "seconds after which an event counts missed"),
        ("--idle", float, 2.0, "idle seconds before each RSS reading"),
        ("--quiet", float, 0.5, "seconds to watch for extra events after a round"),
        ("--pause", float, 1.0, "seconds between rounds"),
        ("--seed", int, 1, "random seed for the statuses"),
    ):
        arguments.add_argument(flag, type=kind, default=default, help=text)
    args = arguments.parse_args(argv)
    if args.subscribers < PROCESSES or args.rounds < 1 or args.concurrency < 1:
        arguments.error(f"--subscribers must be at least {PROCESSES}; --rounds, --concurrency >= 1")
    if args.timeout <= 0 or min(args.idle, args.quiet, args.pause) < 0:
        arguments.error("--timeout must be positive; --idle, --quiet and --pause not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report("live", as_json=args.json)
    soft, _ = harness.raise_open_files_limit()
    with harness.scratch_database("live", redis_db=13, keep=args.keep) as db:
        report.say(
            f"rollcall live benchmark: {os.cpu_count()} CPUs, {args.subscribers} subscribers over "
            f"{PROCESSES} API processes, {args.rounds} rounds, open files limit {soft}, "
            f"{db.describe()}"
        )
        failed = harness.run(benchmark(args, db, report))
    if failed:
        report.say("events were MISSED or wrong, or connections dropped (see above)")
    return report.finish(failed=failed, strict=args.strict)


if __name__ == "__main__":
    raise SystemExit(main())
