"""``uploadMedicalCertificate`` over HTTP against one ``rollcall serve``: latency, the server's
memory, oversized bodies refused, and scan speed: see benchmarks/README.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import math
import os
import random
import secrets
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import httpx
from arq.connections import ArqRedis, RedisSettings, create_pool
from sqlalchemy import func, select, update

from benchmarks import harness
from benchmarks.harness import BenchmarkError, Cell, MemoryWatch, Report, Samples
from benchmarks.jobs import Throughput, drain, forget_results, poll_label
from graph.edge.bodies import MAX_MULTIPART_BODY
from rollcall.processes import ServerProcess, running_server
from services.certificate_files import MAX_FILE_SIZE
from services.models import FileStatus, MedicalCertificate
from services.platform.db import SessionFactory
from services.platform.settings import Settings
from services.queue import SCAN_CERTIFICATE, Queue
from tests import files

MB = 1024 * 1024
STUDENTS = 16
CHUNK = 64 * 1024  # how the oversized bodies are written
RSS_INTERVAL = 0.02  # seconds between samples of the server's VmRSS
REQUEST_TIMEOUT = 120.0
UPLOAD = """mutation Upload($file: Upload!, $input: MedicalCertificateInput!) {
  uploadMedicalCertificate(file: $file, input: $input) { id size status } }"""
HTTPX, HTTPX_SYNC, SOCKET = "httpx", "httpx sync", "socket"
UPLOADS = ("file", "clients", "uploads", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms")
UPLOADS += ("uploads/s", "MB/s", "server CPU", "CPU ms/upload", "client CPU", "peak RSS MB")
UPLOADS += ("spooled",)
REFUSALS = ("client", "body", "trials", "413 read", "cut off", "time to answer, ms")
REFUSALS += ("body sent by then, MB", "errors")
SCANS = ("files", "worker poll_delay", "scans", "drain s", "scans/s", "MB/s", "busy s")
SCANS += ("scans/s busy", "job p50 ms", "job p95 ms", "worker CPU", "failed", "statuses")
FORMATS = {name: "{:.1f}" for name in UPLOADS + SCANS if "/" in name or name.endswith(("ms", "MB"))}
FORMATS |= dict.fromkeys(("job p50 ms", "job p95 ms"), "{:.0f}")
FORMATS |= dict.fromkeys(("server CPU", "client CPU", "worker CPU"), "{:.0f} %")


def size_label(size: int) -> str:
    return f"{size / MB:.3g} MB"


def pdf_of_size(size: int, rng: random.Random) -> bytes:
    """A PDF (``tests.files.pdf``) whose comment holds random bytes: exactly ``size`` bytes."""
    content = files.pdf(rng.randbytes(size - len(files.pdf(b"x")) + 1))
    assert len(content) == size
    return content


@dataclass(frozen=True)
class Multipart:
    """A GraphQL multipart request's body around one file, ``head + file + tail``, with the parts
    and headers of Apollo's upload client."""

    boundary: str
    head: bytes
    tail: bytes

    @classmethod
    def build(cls) -> Multipart:
        today = datetime.now(UTC).date()
        cover = {"description": "Benchmark", "coversFrom": str(today - timedelta(days=3))}
        cover["coversTo"] = str(today - timedelta(days=1))
        boundary = f"rollcall-bench-{secrets.token_hex(12)}"
        operations = json.dumps({"query": UPLOAD, "variables": {"file": None, "input": cover}})
        mapping = json.dumps({"0": ["variables.file"]})
        part = f'--{boundary}\r\nContent-Disposition: form-data; name="'
        head = (
            f'{part}operations"\r\n\r\n{operations}\r\n{part}map"\r\n\r\n{mapping}\r\n'
            f'{part}0"; filename="certificate.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
        )
        return cls(boundary, head.encode(), f"\r\n--{boundary}--\r\n".encode())

    def length(self, size: int) -> int:
        return len(self.head) + size + len(self.tail)

    def headers(self, token: str) -> dict[str, str]:
        kind, bearer = f"multipart/form-data; boundary={self.boundary}", f"Bearer {token}"
        return {"content-type": kind, "apollo-require-preflight": "true", "authorization": bearer}


def spooled_files(pid: int) -> int:
    """Open files of the process that are deleted temporary files: Starlette's
    SpooledTemporaryFile copies of uploads once they went to disk."""
    count = 0
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                count += target.startswith(tempfile.gettempdir()) and target.endswith("(deleted)")
    return count


@dataclass
class Bench:
    args: argparse.Namespace
    settings: Settings
    report: Report
    server: ServerProcess
    client: httpx.AsyncClient
    arq: ArqRedis
    session_factory: SessionFactory
    tokens: Iterator[str]  # the seeded students', round and round
    multipart: Multipart = field(default_factory=Multipart.build)
    accepted: int = 0  # bytes of the uploads the server accepted

    async def upload(self, content: bytes) -> tuple[float, str | None]:
        """One upload as the next seeded student; (milliseconds, an error or None)."""
        body = self.multipart.head + content + self.multipart.tail
        headers = self.multipart.headers(next(self.tokens))
        started = time.perf_counter()
        try:
            response = await self.client.post("/graphql", content=body, headers=headers)
        except httpx.HTTPError as error:
            return (time.perf_counter() - started) * 1000, f"{type(error).__name__}: {error}"
        elapsed = (time.perf_counter() - started) * 1000
        try:
            answer = response.json()
        except ValueError:
            return elapsed, f"HTTP {response.status_code}: {response.text[:200]}"
        certificate = (answer.get("data") or {}).get("uploadMedicalCertificate") or {}
        if response.status_code != 200 or "errors" in answer:
            return elapsed, f"HTTP {response.status_code}: {str(answer)[:300]}"
        if certificate.get("size") != len(content) or certificate.get("status") != "PENDING":
            return elapsed, f"unexpected answer: {str(answer)[:300]}"
        self.accepted += len(content)
        return elapsed, None

    async def must_upload(self, content: bytes, what: str) -> None:
        if (error := (await self.upload(content))[1]) is not None:
            raise BenchmarkError(f"{what} failed: {error}")


async def measure_row(bench: Bench, content: bytes, concurrency: int) -> tuple[Cell, ...]:
    """``--files`` uploads of ``content`` by ``concurrency`` clients: a row of the table."""
    pid, size, samples = bench.server.pid, len(content), Samples()
    client_before, server_before = time.process_time(), harness.cpu_seconds(pid)
    async with MemoryWatch(pid, interval=RSS_INTERVAL, extra=spooled_files) as watch:
        loop = {"clients": concurrency, "requests": bench.args.files, "warmup": 0}
        await harness.run_concurrent(samples, lambda _: bench.upload(content), **loop)
    server = harness.cpu_seconds(pid) - server_before
    client, wall = time.process_time() - client_before, samples.seconds or math.nan
    done = len(samples.latencies) - samples.errors
    bench.report.say(f"  {size_label(size)} x{concurrency}: {samples.summary(throughput=True)}")
    latency = (samples.p(50), samples.p(95), samples.p(99), samples.max)
    rates = (done / wall, done * size / MB / wall, 100 * server / wall)
    cpu = (1000 * server / done if done else None, 100 * client / wall)
    peaks = (watch.peak_kb / 1024, watch.peak_extra)
    return (size_label(size), concurrency, done, samples.errors, *latency, *rates, *cpu, *peaks)


def memory_line(label: str, value: str) -> str:
    return f"  {label:<46}{value}"


async def measure_memory(bench: Bench, content: bytes) -> tuple[float, int]:
    """``--memory-rounds`` bursts of ``--memory-concurrency`` simultaneous uploads: the server's
    memory as figures; the RSS at idle before them (MB) and how many of the uploads failed."""
    pid, concurrency, size = bench.server.pid, bench.args.memory_concurrency, len(content)
    idle = await harness.idle_rss_kb(pid) / 1024
    reset, failed = harness.reset_peak(pid), 0
    async with MemoryWatch(pid, interval=RSS_INTERVAL, extra=spooled_files) as watch:
        for _ in range(bench.args.memory_rounds):
            burst = await asyncio.gather(*(bench.upload(content) for _ in range(concurrency)))
            failed += sum(error is not None for _, error in burst)
    hwm = harness.status_kb(pid)["VmHWM"] / 1024 if reset else None
    after, peak = await harness.idle_rss_kb(pid) / 1024, watch.peak_kb / 1024
    growth = max(peak, hwm or 0) - idle
    per_upload = growth / concurrency
    buffered = f"(whole uploads held in memory would be >= {concurrency * size / MB:.0f} MB)"
    for label, value, text in [
        ("RSS at idle", idle, f"{idle:8.1f} MB"),
        ("peak, sampled every 20 ms", peak, f"{peak:8.1f} MB ({watch.samples} samples)"),
        ("peak, VmHWM since the reset", hwm, "n/a (no reset)" if hwm is None else f"{hwm:8.1f} MB"),
        ("growth at the peak", growth, f"{growth:8.1f} MB {buffered}"),
        (f"growth per concurrent {size_label(size)} upload", per_upload, f"{per_upload:8.2f} MB"),
        ("RSS 1 s after the last upload", after, f"{after:8.1f} MB ({after - idle:+.1f} MB kept)"),
        ("uploads spooled to disk at once (max)", watch.peak_extra, f"{watch.peak_extra:8d}"),
    ]:
        bench.report.figure(f"memory: {label}", value, memory_line(label, text))
    bench.report.figure("memory: failed uploads", failed)
    return idle, failed


@dataclass
class Refusal:
    """One oversized request: what came back, how soon, and how much had been sent by then."""

    client: str  # HTTPX, HTTPX_SYNC or SOCKET
    declared: bool  # Content-Length sent (else chunked)
    length: int  # the whole body's bytes
    status: int | None = None
    seconds: float = math.nan  # request start -> response (httpx) or its first byte (socket)
    sent: int = 0  # body bytes written when the response (or the error) came
    error: str | None = None  # the exception instead of a response

    @property
    def answered(self) -> bool:
        """The client read the 413."""
        return self.status == 413

    @property
    def cut_off(self) -> bool:
        """The server stopped the request: a 413, or the connection closed mid-body."""
        return self.answered or (self.status is None and self.sent < self.length)


def oversized_pieces(multipart: Multipart, total: int) -> Iterator[bytes]:
    """The body of an upload of ``total`` bytes (a PDF header, then zeros) in 64 KiB pieces."""
    yield multipart.head
    first, zeros = files.pdf() + bytes(CHUNK - len(files.pdf())), bytes(CHUNK)
    for start in range(0, total, CHUNK):
        yield (first if start == 0 else zeros)[: total - start]
    yield multipart.tail


@contextlib.contextmanager
def answer(result: Refusal) -> Iterator[None]:
    """Times the block into ``result.seconds``; an httpx error becomes ``result.error``."""
    started = time.perf_counter()
    try:
        yield
    except httpx.HTTPError as error:
        result.error = f"{type(error).__name__}: {error}"
    finally:
        result.seconds = time.perf_counter() - started


async def refuse_httpx(bench: Bench, total: int, declared: bool, blocking: bool) -> Refusal:
    """The body streamed from a generator through httpx's asyncio client or its blocking one (in
    a thread); ``sent`` counts a piece once httpx came back for the next (it was written)."""
    url, multipart = bench.server.base_url, bench.multipart
    result = Refusal(HTTPX_SYNC if blocking else HTTPX, declared, multipart.length(total))
    headers = multipart.headers(next(bench.tokens))
    if declared:  # else httpx sends it chunked
        headers["content-length"] = str(result.length)

    def body() -> Iterator[bytes]:
        for piece in oversized_pieces(multipart, total):
            yield piece
            result.sent += len(piece)

    async def async_body() -> AsyncIterator[bytes]:
        for piece in body():
            yield piece

    def post() -> None:
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as client, answer(result):
            result.status = client.post("/graphql", content=body(), headers=headers).status_code

    if blocking:
        await asyncio.to_thread(post)
        return result
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT) as client:
        with answer(result):
            response = await client.post("/graphql", content=async_body(), headers=headers)
            result.status = response.status_code
    return result


async def refuse_socket(bench: Bench, total: int, declared: bool) -> Refusal:
    """The request written to a raw non-blocking socket while a reader waits for the answer;
    ``sent`` counts the body bytes the kernel had taken when the answer's first byte came. A
    failed write does not end the reading: the answer may already be in the receive buffer."""
    host, port, multipart = bench.server.host, bench.server.port, bench.multipart
    result = Refusal(SOCKET, declared, multipart.length(total))
    headers = multipart.headers(next(bench.tokens))
    headers |= {"content-length": str(result.length)} if declared else {}
    headers |= {} if declared else {"transfer-encoding": "chunked"}
    head = f"POST /graphql HTTP/1.1\r\nhost: {host}:{port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    loop = asyncio.get_running_loop()
    sock = socket.create_connection((host, port))
    sock.setblocking(False)
    written = 0

    async def write() -> None:
        nonlocal written
        await loop.sock_sendall(sock, head.encode())
        for piece in oversized_pieces(multipart, total):
            framed = piece if declared else f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            await loop.sock_sendall(sock, framed)
            written += len(piece)
        if not declared:
            await loop.sock_sendall(sock, b"0\r\n\r\n")

    started = time.perf_counter()
    writing = asyncio.create_task(write())
    try:
        first = await asyncio.wait_for(loop.sock_recv(sock, 65536), REQUEST_TIMEOUT)
        result.seconds, result.sent = time.perf_counter() - started, written
        if first.startswith(b"HTTP/1.1 "):
            result.status = int(first.split()[1])
        else:
            result.error = f"no answer (read {first[:80]!r})"
    except (OSError, TimeoutError) as error:
        result.seconds, result.sent = time.perf_counter() - started, written
        result.error = f"{type(error).__name__}: {error}"
    finally:
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await writing
        sock.close()
    return result


async def measure_refusals(bench: Bench, total: int) -> list[Refusal]:
    results: list[Refusal] = []
    for declared in (True, False):
        for _ in range(bench.args.oversize_trials):
            results.append(await refuse_httpx(bench, total, declared, blocking=False))
            results.append(await refuse_httpx(bench, total, declared, blocking=True))
            results.append(await refuse_socket(bench, total, declared))
    for r in results:
        bench.report.say(
            f"  {r.client:10} {'declared' if r.declared else 'chunked '}: status {r.status} after "
            f"{r.seconds * 1000:.0f} ms, {r.sent / MB:.2f} MB sent"
            + (f"; {r.error}" if r.error else "")
        )
    return results


def refusal_rows(refusals: list[Refusal], total: int) -> list[tuple[Cell, ...]]:
    rows: list[tuple[Cell, ...]] = []
    for declared, client in itertools.product((True, False), (HTTPX, HTTPX_SYNC, SOCKET)):
        group = [r for r in refusals if r.client == client and r.declared == declared]
        errors = [r.error for r in group if r.error]
        body = f"{total / MB:g} MB, " + ("Content-Length" if declared else "chunked")
        counts = (len(group), sum(r.answered for r in group), sum(r.cut_off for r in group))
        times = " / ".join(f"{r.seconds * 1000:.0f}" for r in group)
        sent = " / ".join(f"{r.sent / MB:.2f}" for r in group)
        failed = f"{len(errors)}: {errors[0][:50]}" if errors else "0"
        rows += [(client, body, *counts, times, sent, failed)] if group else []
    return rows


class Scans(NamedTuple):
    """One drain of the scan queue: its row of the table, whether it failed, what it scanned."""

    cells: tuple[Cell, ...]
    failed: bool
    scanned: list[tuple[str, str]]  # the jobs' (tenant, certificate) arguments


async def scan_all(bench: Bench, size: int, poll_delay: float | None) -> Scans:
    """Both workers in burst mode over every queued scan, timed from their start."""
    queued = await bench.arq.zcard(Queue.NORMAL.value)
    await forget_results(bench.arq)
    r = Throughput(f"scan {size_label(size)}", poll_label(poll_delay), queued)
    await drain(bench.settings, r, poll_delay=poll_delay, expected={Queue.NORMAL.value: queued})
    bench.report.say(r.line())
    jobs = [j for j in await bench.arq.all_job_results() if j.function == SCAN_CERTIFICATE]
    runs = Samples([(j.finish_time - j.start_time).total_seconds() * 1000 for j in jobs])
    starts, ends = [j.start_time for j in jobs], [j.finish_time for j in jobs]
    busy = (max(ends) - min(starts)).total_seconds() if jobs else 0.0
    counts = select(MedicalCertificate.status, func.count()).where(MedicalCertificate.size == size)
    async with bench.session_factory() as session:
        counted = await session.execute(counts.group_by(MedicalCertificate.status))
        statuses = {FileStatus(status).value: count for status, count in counted.all()}
    mb_per_second = r.jobs * size / MB / r.drain_seconds if r.drain_seconds else 0.0
    busy_rate = r.jobs / busy if busy else 0.0
    rates = (r.drain_seconds, r.jobs_per_second, mb_per_second, busy, busy_rate)
    listed = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
    cells = (size_label(size), r.poll, r.jobs, *rates, runs.p(50), runs.p(95), r.cpu_percent)
    failed = bool(r.failures) or set(statuses) != {"AWAITING_REVIEW"}
    scanned = [(str(j.args[0]), str(j.args[1])) for j in jobs]
    return Scans((*cells, r.failures, listed), failed, scanned)


async def rescan(bench: Bench, size: int, scanned: list[tuple[str, str]]) -> Scans:
    """The scanned certificates back to PENDING and their scans queued again, as the upload
    queued them; then the same work with the patched poll delay."""
    await forget_results(bench.arq)
    async with bench.session_factory() as session, session.begin():
        await session.execute(
            update(MedicalCertificate)
            .where(MedicalCertificate.id.in_([uuid.UUID(c) for _, c in scanned]))
            .values(status=FileStatus.PENDING, scan_result=None, scanned_at=None)
        )
    for tenant_id, certificate_id in scanned:
        job_id = f"{SCAN_CERTIFICATE}:{certificate_id}"  # as the upload queued it
        scan = (SCAN_CERTIFICATE, tenant_id, certificate_id)
        job = await bench.arq.enqueue_job(*scan, _queue_name=Queue.NORMAL.value, _job_id=job_id)
        if job is None:
            raise BenchmarkError(f"could not queue the scan of {certificate_id} again")
    return await scan_all(bench, size, bench.args.patched_poll_delay)


def stored_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


async def measure(bench: Bench, contents: dict[int, bytes], biggest: bytes) -> bool:
    """Every figure in turn, said as it is taken, then the tables; whether something failed."""
    args, report, say = bench.args, bench.report, bench.report.say
    # Warm-up: imports, pools, the thread pool and first-call costs of every size.
    for content in [*contents.values(), biggest] * args.warmup:
        await bench.must_upload(content, "warm-up upload")
    big = f"{args.memory_concurrency} concurrent {size_label(len(biggest))} uploads"
    say(f"server memory, {args.memory_rounds} rounds of {big}:")
    idle, memory_failed = await measure_memory(bench, biggest)
    say("scanning the warm-up's and the memory run's files (untimed)…")
    await scan_all(bench, len(biggest), args.patched_poll_delay)
    rows: list[tuple[Cell, ...]] = []
    scans: list[Scans] = []
    for size, content in contents.items():
        rows += [await measure_row(bench, content, clients) for clients in args.concurrency]
        scans.append(await scan_all(bench, size, None))
        if not args.no_patched:
            scans.append(await rescan(bench, size, scans[-1].scanned))
    total = int(args.oversize_mb * MB)
    say(f"oversized: {args.oversize_trials} trials per way of a {total / MB:g} MB body…")
    refusals = await measure_refusals(bench, total)
    # The server still answers, and kept nothing of the refused bodies.
    await bench.must_upload(contents[min(contents)], "an upload after the oversized ones")
    await scan_all(bench, min(contents), args.patched_poll_delay)
    end = await harness.idle_rss_kb(bench.server.pid) / 1024
    assert bench.settings.storage_url is not None
    stored = stored_bytes(Path(bench.settings.storage_url.removeprefix("file://")))
    problems = harness.log_problems(bench.server)

    say("", "uploads (latency: request start to the whole answer; MB/s of file content):")
    report.table("uploads", UPLOADS, rows, formats=FORMATS)
    limit = f"limit {MAX_MULTIPART_BODY / MB:.2f} MB"
    say("", f"oversized body ({limit}; time and bytes sent per trial):")
    report.table("oversized", REFUSALS, refusal_rows(refusals, total), left=2)
    say("", "scans (both workers in burst mode, no cron jobs, the built-in signature scanner):")
    report.table("scans", SCANS, [s.cells for s in scans], left=2, formats=FORMATS)
    label = "RSS at idle after the whole run"
    text = memory_line(label, f"{end:8.1f} MB ({end - idle:+.1f} MB)")
    report.figure(f"memory: {label}", end, f"\n{text}")
    mismatch = "" if stored == bench.accepted else "  (MISMATCH)"
    report.figure("stored on disk MB", stored / MB)
    text = f"stored on disk {stored / MB:.1f} MB; accepted uploads {bench.accepted / MB:.1f} MB"
    report.figure("accepted uploads MB", bench.accepted / MB, text + mismatch)
    report.figure("server log warnings/errors", len(problems))
    if problems:
        say(f"\nthe server logged {len(problems)} warnings/errors; the first:")
        say(*(f"  {line}" for line in problems[:10]))
    say(
        "(MB = 1,048,576 bytes. server CPU: 100 % = one core, over the row's wall time. peak RSS: "
        "the server's VmRSS sampled every 20 ms. spooled: most uploads the server held at once "
        "as deleted temporary files. drain s: workers started -> last scan done; busy s: first "
        "scan started -> last done; job p50/p95: each scan job's own run time, 10 at a time.)"
    )
    uploads_failed = any(row[UPLOADS.index("errors")] for row in rows) or memory_failed > 0
    return uploads_failed or not all(r.cut_off for r in refusals) or any(s.failed for s in scans)


async def benchmark(args: argparse.Namespace, settings: Settings, report: Report) -> bool:
    assert settings.redis_url is not None and settings.storage_url is not None
    started = time.perf_counter()
    school = await harness.seed_school(settings, classes=1, students_per_class=STUDENTS, days=0)
    seconds = time.perf_counter() - started
    report.say(f"seeded one classroom of {STUDENTS} students in {seconds:.1f} s")
    await harness.flush_redis(settings.redis_url)
    env = harness.server_env(settings) | {"ROLLCALL_STORAGE_URL": settings.storage_url}
    rng = random.Random(args.seed)
    sizes = sorted({int(mb * MB) for mb in args.size_mb})
    contents = {size: pdf_of_size(size, rng) for size in sizes}
    biggest = pdf_of_size(MAX_FILE_SIZE, rng)
    limits = httpx.Limits(max_connections=max(args.concurrency) + 2)
    async with (
        harness.database_sessions(settings, pool_max=2) as sessions,
        await create_pool(RedisSettings.from_dsn(settings.redis_url)) as arq,
        running_server(env) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=REQUEST_TIMEOUT, limits=limits) as http,
    ):
        report.say(f"server pid {server.pid} at {server.base_url}, files in {settings.storage_url}")
        tokens = itertools.cycle([token for _, token in school.students])
        bench = Bench(args, settings, report, server, http, arq, sessions, tokens)
        try:
            return await measure(bench, contents, biggest)
        except BaseException:
            report.say(f"\n--- server (pid {server.pid}) log tail ---\n{server.log_tail(40)}")
            raise


def main(argv: Sequence[str] | None = None) -> int:
    about = "Latency, memory and refusals of uploadMedicalCertificate, and scan speed."
    arguments = harness.parser("uploads", about, strict=False)
    add = arguments.add_argument
    add("--files", type=int, default=100, help="uploads per size and concurrency")
    add("--concurrency", type=int, nargs="+", default=[1, 8], help="concurrent clients per row")
    sizes = [0.1, 1.0, 10.0]
    add("--size-mb", type=float, nargs="+", default=sizes, help="file sizes in MB, at most 10")
    add("--memory-concurrency", type=int, default=8, help="simultaneous 10 MB uploads")
    add("--memory-rounds", type=int, default=3, help="bursts in the memory measurement")
    add("--oversize-mb", type=float, default=50.0, help="the oversized body")
    add("--oversize-trials", type=int, default=3, help="trials per client and framing")
    add("--patched-poll-delay", type=float, default=0.05, help="poll delay of the second scans, s")
    add("--no-patched", action="store_true", help="skip the second scans (patched poll delay)")
    add("--warmup", type=int, default=1, help="untimed uploads of each size")
    add("--seed", type=int, default=1, help="random seed for the files")
    args = arguments.parse_args(argv)
    smallest = len(files.pdf(b"x"))
    if any(not smallest <= mb * MB <= MAX_FILE_SIZE for mb in args.size_mb):
        arguments.error(f"--size-mb must be from {smallest} bytes to {MAX_FILE_SIZE // MB} MB")
    if args.files < 1 or min(args.concurrency) < 1 or args.memory_concurrency < 1:
        arguments.error("--files, --concurrency and --memory-concurrency must be at least 1")
    if args.memory_rounds < 1 or args.oversize_trials < 0 or args.warmup < 0:
        arguments.error("--memory-rounds must be at least 1; the others not negative")
    if args.oversize_mb * MB <= MAX_MULTIPART_BODY:
        arguments.error(f"--oversize-mb must be over the limit, {MAX_MULTIPART_BODY / MB:.2f} MB")
    report = Report("uploads", as_json=args.json)
    storage = tempfile.mkdtemp(prefix="rollcall-bench-uploads-")
    try:
        with harness.scratch_database("uploads", redis_db=12, keep=args.keep) as db:
            # the built-in signature scanner, denying nothing
            no_scanner = {"clamd_url": None, "scan_deny_sha256": frozenset()}
            settings = dataclasses.replace(
                db.settings, storage_url=f"file://{storage}", **no_scanner
            )
            report.say(
                f"rollcall upload benchmark: {os.cpu_count()} CPUs, {args.files} uploads per "
                f"row, sizes {', '.join(size_label(int(mb * MB)) for mb in args.size_mb)}, "
                f"clients {', '.join(map(str, args.concurrency))}, {db.describe()}, temporary "
                f"files in {tempfile.gettempdir()}"
            )
            failed = harness.run(benchmark(args, settings, report))
    finally:
        if args.keep:
            report.say(f"kept the stored files in {storage}")
        else:
            shutil.rmtree(storage, ignore_errors=True)
    return report.finish(failed=failed)


if __name__ == "__main__":
    sys.exit(main())
