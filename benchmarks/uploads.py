"""Upload benchmark: ``uploadMedicalCertificate`` over HTTP against one ``rollcall serve``.

Creates a throwaway database with one classroom of students (tokens signed by this script),
flushes a Redis database of its own, and starts one ``rollcall serve`` process
(``ROLLCALL_RATE_LIMITS=off``) storing files on local disk in a temporary directory
(``ROLLCALL_STORAGE_URL=file:///tmp/...``). Every upload is a GraphQL multipart request, as
Apollo's upload client sends it: the ``Apollo-Require-Preflight`` header and the parts
``operations``, ``map`` and ``0``; the file is a valid PDF header (``tests.files.pdf``) padded
with random bytes to the size. The script measures:

1. latency p50/p95/p99/max and throughput (MB/s, uploads/s) for each ``--size-mb`` (default
   0.1, 1 and 10) at each ``--concurrency`` (default 1 and 8), with the server's CPU and its peak
   RSS over each row;
2. the server's memory while ``--memory-concurrency`` (default 8) 10 MB uploads run at once:
   its RSS at idle, its peak (VmHWM, reset first through ``/proc/<pid>/clear_refs``, and VmRSS
   sampled every 20 ms), the growth per concurrent upload, and how many of its open files were
   spooled uploads (deleted files in the temporary directory). A server that buffered whole
   uploads would grow by at least 10 MB per upload;
3. how fast an oversized body (``--oversize-mb``, default 50) is refused, with a declared
   Content-Length and chunked, through three clients: httpx (asyncio) streaming the body from
   an async generator, httpx's blocking client streaming it from a generator, and a raw socket
   that writes while it watches for the answer; the time to the answer, the bytes sent by then,
   and whether the client could read the 413 at all;
4. scan throughput: after each size's uploads, the two workers of ``jobs.worker.create_workers``
   in burst mode (no cron jobs, the built-in signature scanner) scan them, once with the poll
   delays as shipped, and once more (the same certificates set back to PENDING and queued
   again) with both workers' poll delay patched to ``--patched-poll-delay`` (default 0.05 s):
   scans/s, MB/s and each job's run time.

Run from the repository root::

    .venv/bin/python -m benchmarks.uploads [--files 100] [--concurrency 1 8] [--size-mb 0.1 1 10]

A script, not a test: it prints figures and exits 1 when an upload that should pass failed, an
oversized one was not refused, or a scan did not end clean. It FLUSHES its Redis database
(``--redis-url``, default ``ROLLCALL_REDIS_URL`` or ``redis://127.0.0.1:6379/12``) at the start
and, unless ``--keep``, at the end.
"""

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
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ``python benchmarks/uploads.py`` finds the project packages

import httpx  # noqa: E402
from arq.connections import ArqRedis, RedisSettings, create_pool  # noqa: E402
from sqlalchemy import func, select, update  # noqa: E402

from benchmarks.cache import cpu_seconds, flush_redis, run  # noqa: E402
from benchmarks.foundation import (  # noqa: E402
    BenchmarkError,
    add_server_arguments,
    percentile,
    scratch_database,
)
from benchmarks.jobs import Throughput, drain, forget_results, poll_label, render  # noqa: E402
from benchmarks.live import Roster, log_problems, seed_class, server_env  # noqa: E402
from graph.edge.uploads import MAX_MULTIPART_BODY  # noqa: E402
from rollcall.processes import ServerProcess, running_server  # noqa: E402
from services.certificate_files import MAX_FILE_SIZE  # noqa: E402
from services.models import FileStatus, MedicalCertificate  # noqa: E402
from services.platform.db import create_engine, create_session_factory  # noqa: E402
from services.platform.settings import Settings  # noqa: E402
from services.queue import SCAN_CERTIFICATE, Queue  # noqa: E402
from tests import files  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
MB = 1024 * 1024
STUDENTS = 16
CHUNK = 64 * 1024  # how the oversized bodies are written
RSS_INTERVAL = 0.02  # seconds between samples of the server's VmRSS
REQUEST_TIMEOUT = 120.0

UPLOAD = """
mutation Upload($file: Upload!, $input: MedicalCertificateInput!) {
  uploadMedicalCertificate(file: $file, input: $input) { id size status }
}
"""


# --------------------------------------------------------------------------- request bodies


def pdf_of_size(size: int, rng: random.Random) -> bytes:
    """A PDF (``tests.files.pdf``) whose comment holds random bytes: exactly ``size`` bytes."""
    overhead = len(files.pdf(b"x")) - 1
    content = files.pdf(rng.randbytes(size - overhead))
    assert len(content) == size
    return content


@dataclass(frozen=True)
class Multipart:
    """A GraphQL multipart request's body around one file: ``head + file + tail``."""

    boundary: str
    head: bytes
    tail: bytes

    @classmethod
    def build(cls, cover: dict[str, str]) -> Multipart:
        boundary = f"rollcall-bench-{secrets.token_hex(12)}"
        operations = json.dumps({"query": UPLOAD, "variables": {"file": None, "input": cover}})
        mapping = json.dumps({"0": ["variables.file"]})
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'
            f"{operations}\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{mapping}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="0"; '
            f'filename="certificate.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
        ).encode()
        return cls(boundary, head, f"\r\n--{boundary}--\r\n".encode())

    def body(self, content: bytes) -> bytes:
        return self.head + content + self.tail

    def headers(self, token: str) -> dict[str, str]:
        return {
            "content-type": f"multipart/form-data; boundary={self.boundary}",
            "apollo-require-preflight": "true",
            "authorization": f"Bearer {token}",
        }


def cover_dates() -> dict[str, str]:
    today = datetime.now(UTC).date()
    return {
        "coversFrom": (today - timedelta(days=3)).isoformat(),
        "coversTo": (today - timedelta(days=1)).isoformat(),
        "description": "Benchmark",
    }


def size_label(size: int) -> str:
    return f"{size / MB:.3g} MB"


# --------------------------------------------------------------------------- server memory


def status_kb(pid: int) -> dict[str, int]:
    """The ``Vm*`` lines of ``/proc/<pid>/status``, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Vm"):
            name, _, value = line.partition(":")
            found[name] = int(value.split()[0])
    return found


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux 4.0+); whether it worked."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def spooled_files(pid: int, spool_dir: str) -> int:
    """Open files of the process that are deleted files in ``spool_dir``: Starlette's
    SpooledTemporaryFile copies of uploads once they went to disk."""
    count = 0
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith(spool_dir) and target.endswith("(deleted)"):
                    count += 1
    return count


class MemoryWatch:
    """Samples the server's VmRSS (and its spooled uploads) every 20 ms while the block runs."""

    def __init__(self, pid: int, spool_dir: str) -> None:
        self.pid = pid
        self.spool_dir = spool_dir
        self.peak_kb = 0
        self.max_spooled = 0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        self.peak_kb = max(self.peak_kb, status_kb(self.pid)["VmRSS"])
        self.max_spooled = max(self.max_spooled, spooled_files(self.pid, self.spool_dir))
        self.samples += 1

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(RSS_INTERVAL)

    async def __aenter__(self) -> MemoryWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.sample()


async def idle_rss_kb(pid: int, *, seconds: float = 1.0) -> int:
    """The server's VmRSS after ``seconds`` of quiet (the median of a few readings)."""
    await asyncio.sleep(seconds)
    readings = []
    for _ in range(5):
        readings.append(status_kb(pid)["VmRSS"])
        await asyncio.sleep(0.05)
    return sorted(readings)[len(readings) // 2]


# --------------------------------------------------------------------------- uploads


@dataclass
class Row:
    """One size at one concurrency."""

    size: int
    concurrency: int
    latencies: list[float] = field(default_factory=list)  # ms
    errors: int = 0
    first_error: str | None = None
    wall_seconds: float = 0.0
    server_cpu_seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    peak_rss_kb: int = 0
    max_spooled: int = 0

    def record(self, elapsed_ms: float, error: str | None) -> None:
        self.latencies.append(elapsed_ms)
        if error is not None:
            self.errors += 1
            self.first_error = self.first_error or error

    @property
    def done(self) -> int:
        return len(self.latencies) - self.errors

    @property
    def mb_per_second(self) -> float:
        return self.done * self.size / MB / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def per_second(self) -> float:
        return self.done / self.wall_seconds if self.wall_seconds else 0.0


class Uploader:
    """Sends uploads to one server as the seeded students, in turn."""

    def __init__(self, client: httpx.AsyncClient, roster: Roster, multipart: Multipart) -> None:
        self.client = client
        self.multipart = multipart
        self.tokens = itertools.cycle([token for _, token in roster.students])

    async def upload(self, content: bytes) -> tuple[float, str | None]:
        """One upload; (milliseconds, an error or None)."""
        body = self.multipart.body(content)
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
        return elapsed, None

    async def concurrently(self, content: bytes, count: int, concurrency: int, row: Row) -> None:
        """``count`` uploads of ``content`` over ``concurrency`` clients, recorded in ``row``."""
        counter = itertools.count()

        async def client() -> None:
            while next(counter) < count:
                row.record(*await self.upload(content))

        await asyncio.gather(*(client() for _ in range(concurrency)))


async def measure_row(
    uploader: Uploader, server: ServerProcess, spool_dir: str, content: bytes, count: int, n: int
) -> Row:
    row = Row(size=len(content), concurrency=n)
    cpu_before = cpu_seconds(server.pid)
    client_before = time.process_time()
    async with MemoryWatch(server.pid, spool_dir) as watch:
        started = time.perf_counter()
        await uploader.concurrently(content, count, n, row)
        row.wall_seconds = time.perf_counter() - started
    row.server_cpu_seconds = cpu_seconds(server.pid) - cpu_before
    row.client_cpu_seconds = time.process_time() - client_before
    row.peak_rss_kb = watch.peak_kb
    row.max_spooled = watch.max_spooled
    return row


def describe_row(row: Row) -> str:
    samples = row.latencies or [math.nan]
    line = (
        f"  {size_label(row.size)} x{row.concurrency}: {row.done} uploads in "
        f"{row.wall_seconds:.2f} s, p50 {percentile(samples, 50):.1f} ms, p99 "
        f"{percentile(samples, 99):.1f} ms, {row.mb_per_second:.1f} MB/s"
    )
    if row.errors:
        line += f" ERRORS={row.errors} ({row.first_error})"
    return line


@dataclass
class Memory:
    concurrency: int
    rounds: int
    idle_kb: int
    sampled_peak_kb: int = 0
    hwm_kb: int | None = None  # VmHWM after a reset; None when the reset failed
    after_kb: int = 0
    end_kb: int | None = None  # idle at the end of the whole run
    max_spooled: int = 0
    samples: int = 0
    errors: int = 0
    first_error: str | None = None

    @property
    def peak_kb(self) -> int:
        return max(self.sampled_peak_kb, self.hwm_kb or 0)

    @property
    def growth_mb_per_upload(self) -> float:
        return (self.peak_kb - self.idle_kb) / 1024 / self.concurrency


async def measure_memory(
    uploader: Uploader, server: ServerProcess, spool_dir: str, content: bytes, args: Any
) -> Memory:
    """``--memory-rounds`` bursts of ``--memory-concurrency`` simultaneous uploads."""
    memory = Memory(
        concurrency=args.memory_concurrency,
        rounds=args.memory_rounds,
        idle_kb=await idle_rss_kb(server.pid),
    )
    reset = reset_peak(server.pid)
    async with MemoryWatch(server.pid, spool_dir) as watch:
        for _ in range(args.memory_rounds):
            results = await asyncio.gather(
                *(uploader.upload(content) for _ in range(args.memory_concurrency))
            )
            for _, error in results:
                if error is not None:
                    memory.errors += 1
                    memory.first_error = memory.first_error or error
    memory.sampled_peak_kb = watch.peak_kb
    memory.max_spooled = watch.max_spooled
    memory.samples = watch.samples
    memory.hwm_kb = status_kb(server.pid)["VmHWM"] if reset else None
    memory.after_kb = await idle_rss_kb(server.pid)
    return memory


# --------------------------------------------------------------------------- oversized bodies

HTTPX = "httpx"
HTTPX_SYNC = "httpx sync"
SOCKET = "socket"
CLIENTS = (HTTPX, HTTPX_SYNC, SOCKET)


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
    first = files.pdf() + bytes(CHUNK - len(files.pdf()))
    zeros = bytes(CHUNK)
    for start in range(0, total, CHUNK):
        yield (first if start == 0 else zeros)[: total - start]
    yield multipart.tail


def oversized_headers(multipart: Multipart, token: str, length: int, declared: bool) -> Any:
    headers = multipart.headers(token)
    if declared:  # else httpx sends it chunked
        headers["content-length"] = str(length)
    return headers


async def refuse_httpx(
    base_url: str, multipart: Multipart, token: str, total: int, declared: bool
) -> Refusal:
    """The body streamed from an async generator through httpx (asyncio); ``sent`` counts a
    piece once httpx came back for the next, i.e. once it was written to the socket."""
    length = len(multipart.head) + total + len(multipart.tail)
    result = Refusal(HTTPX, declared, length)

    async def body() -> AsyncIterator[bytes]:
        for piece in oversized_pieces(multipart, total):
            yield piece
            result.sent += len(piece)

    headers = oversized_headers(multipart, token, length, declared)
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
        started = time.perf_counter()
        try:
            response = await client.post("/graphql", content=body(), headers=headers)
            result.status = response.status_code
        except httpx.HTTPError as error:
            result.error = f"{type(error).__name__}: {error}"
        result.seconds = time.perf_counter() - started
    return result


def refuse_httpx_sync(
    base_url: str, multipart: Multipart, token: str, total: int, declared: bool
) -> Refusal:
    """The same through httpx's blocking client (run in a thread)."""
    length = len(multipart.head) + total + len(multipart.tail)
    result = Refusal(HTTPX_SYNC, declared, length)

    def body() -> Iterator[bytes]:
        for piece in oversized_pieces(multipart, total):
            yield piece
            result.sent += len(piece)

    headers = oversized_headers(multipart, token, length, declared)
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
        started = time.perf_counter()
        try:
            response = client.post("/graphql", content=body(), headers=headers)
            result.status = response.status_code
        except httpx.HTTPError as error:
            result.error = f"{type(error).__name__}: {error}"
        result.seconds = time.perf_counter() - started
    return result


async def refuse_socket(
    host: str, port: int, multipart: Multipart, token: str, total: int, declared: bool
) -> Refusal:
    """The request written to a raw non-blocking socket while a reader waits for the answer;
    ``sent`` counts the body bytes the kernel had taken when the answer's first byte came. A
    failed write does not end the reading: the answer may already be in the receive buffer."""
    length = len(multipart.head) + total + len(multipart.tail)
    result = Refusal(SOCKET, declared, length)
    framing = f"content-length: {length}" if declared else "transfer-encoding: chunked"
    head = (
        f"POST /graphql HTTP/1.1\r\nhost: {host}:{port}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in multipart.headers(token).items())
        + f"{framing}\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    sock = socket.create_connection((host, port))
    sock.setblocking(False)
    written = 0

    async def write() -> None:
        nonlocal written
        await loop.sock_sendall(sock, head)
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
        result.seconds = time.perf_counter() - started
        result.sent = written
        if first.startswith(b"HTTP/1.1 "):
            result.status = int(first.split()[1])
        else:
            result.error = f"no answer (read {first[:80]!r})"
    except (OSError, TimeoutError) as error:
        result.seconds = time.perf_counter() - started
        result.sent = written
        result.error = f"{type(error).__name__}: {error}"
    finally:
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await writing
        sock.close()
    return result


async def measure_refusals(
    server: ServerProcess, multipart: Multipart, roster: Roster, args: Any
) -> list[Refusal]:
    total = int(args.oversize_mb * MB)
    token = roster.students[0][1]
    results: list[Refusal] = []
    for declared in (True, False):
        for _ in range(args.oversize_trials):
            results.append(await refuse_httpx(server.base_url, multipart, token, total, declared))
            results.append(
                await asyncio.to_thread(
                    refuse_httpx_sync, server.base_url, multipart, token, total, declared
                )
            )
            results.append(
                await refuse_socket(server.host, server.port, multipart, token, total, declared)
            )
    return results


# --------------------------------------------------------------------------- scans


@dataclass
class Scans:
    size: int
    result: Throughput
    run_ms: list[float]  # each job's own run time, from arq's kept results
    busy_seconds: float  # the first job's start -> the last job's finish
    statuses: dict[str, int]  # the tenant's certificates of this size, by status

    @property
    def mb_per_second(self) -> float:
        seconds = self.result.drain_seconds
        return self.result.jobs * self.size / MB / seconds if seconds else 0.0

    @property
    def busy_per_second(self) -> float:
        return self.result.jobs / self.busy_seconds if self.busy_seconds else 0.0


async def scan_jobs(arq: ArqRedis) -> tuple[list[float], float, list[tuple[str, str]]]:
    """Each kept scan job's run time (ms), the first start to the last finish (s), and the
    jobs' (tenant, certificate) arguments."""
    results = [r for r in await arq.all_job_results() if r.function == SCAN_CERTIFICATE]
    if not results:
        return [], 0.0, []
    runs = [(r.finish_time - r.start_time).total_seconds() * 1000 for r in results]
    first = min(r.start_time for r in results)
    busy = (max(r.finish_time for r in results) - first).total_seconds()
    return runs, busy, [(str(r.args[0]), str(r.args[1])) for r in results]


async def certificate_statuses(settings: Settings, size: int) -> dict[str, int]:
    """How many certificates of ``size`` bytes are in each status."""
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_max=1)
    try:
        async with create_session_factory(engine)() as session:
            counted = await session.execute(
                select(MedicalCertificate.status, func.count())
                .where(MedicalCertificate.size == size)
                .group_by(MedicalCertificate.status)
            )
            return {FileStatus(status).value: count for status, count in counted.all()}
    finally:
        await engine.dispose()


async def scan_all(
    settings: Settings, arq: ArqRedis, size: int, poll_delay: float | None
) -> tuple[Scans, list[tuple[str, str]]]:
    """Both workers in burst mode over every queued scan, timed from their start; the figures
    and the scanned jobs' arguments."""
    queued = await arq.zcard(Queue.NORMAL.value)
    await forget_results(arq)
    result = Throughput(
        workload=f"scan {size_label(size)}",
        poll=poll_label(poll_delay),
        jobs=queued,
        students=0,
        enqueue_seconds=0.0,
    )
    await drain(settings, result, poll_delay=poll_delay, expected={Queue.NORMAL.value: queued})
    runs, busy, scanned = await scan_jobs(arq)
    statuses = await certificate_statuses(settings, size)
    return Scans(size, result, runs, busy, statuses), scanned


async def requeue_scans(settings: Settings, arq: ArqRedis, scanned: list[tuple[str, str]]) -> None:
    """The scanned certificates back to PENDING and their scans queued again, as the upload
    queued them: the same work for a second pass."""
    assert settings.database_url is not None
    await forget_results(arq)
    engine = create_engine(settings.database_url, pool_max=1)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            await session.execute(
                update(MedicalCertificate)
                .where(MedicalCertificate.id.in_([uuid.UUID(c) for _, c in scanned]))
                .values(status=FileStatus.PENDING, scan_result=None, scanned_at=None)
            )
    finally:
        await engine.dispose()
    for tenant_id, certificate_id in scanned:
        job = await arq.enqueue_job(
            SCAN_CERTIFICATE,
            tenant_id,
            certificate_id,
            _queue_name=Queue.NORMAL.value,
            _job_id=f"{SCAN_CERTIFICATE}:{certificate_id}",
        )
        if job is None:
            raise BenchmarkError(f"could not queue the scan of {certificate_id} again")


def describe_scans(scans: Scans) -> str:
    r = scans.result
    line = (
        f"  [{r.poll}] scanned {r.jobs} {size_label(scans.size)} files in "
        f"{r.drain_seconds:.2f} s: {r.jobs_per_second:.1f} scans/s, "
        f"{scans.mb_per_second:.1f} MB/s; statuses {scans.statuses}"
    )
    if r.failed or r.retried or r.error:
        line += f" FAILED={r.failed} RETRIED={r.retried} {r.error or ''}"
    return line


# --------------------------------------------------------------------------- report


def rows_table(rows: Sequence[Row]) -> str:
    header = (
        "file",
        "clients",
        "uploads",
        "errors",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "uploads/s",
        "MB/s",
        "server CPU",
        "CPU ms/upload",
        "client CPU",
        "peak RSS MB",
        "spooled",
    )
    table = []
    for r in rows:
        samples = r.latencies or [math.nan]
        table.append(
            (
                size_label(r.size),
                str(r.concurrency),
                str(r.done),
                str(r.errors),
                f"{percentile(samples, 50):.1f}",
                f"{percentile(samples, 95):.1f}",
                f"{percentile(samples, 99):.1f}",
                f"{max(samples):.1f}",
                f"{r.per_second:.1f}",
                f"{r.mb_per_second:.1f}",
                f"{100 * r.server_cpu_seconds / r.wall_seconds:.0f} %" if r.wall_seconds else "-",
                f"{1000 * r.server_cpu_seconds / r.done:.1f}" if r.done else "-",
                f"{100 * r.client_cpu_seconds / r.wall_seconds:.0f} %" if r.wall_seconds else "-",
                f"{r.peak_rss_kb / 1024:.1f}",
                str(r.max_spooled),
            )
        )
    return render(header, table, left=1)


def memory_lines(memory: Memory, size: int) -> list[str]:
    hwm = f"{memory.hwm_kb / 1024:.1f} MB" if memory.hwm_kb is not None else "n/a (no reset)"
    buffered = memory.concurrency * size / MB
    lines = [
        f"  RSS at idle                                   {memory.idle_kb / 1024:8.1f} MB",
        f"  peak, sampled every {RSS_INTERVAL * 1000:.0f} ms ({memory.samples} samples)"
        f"{'':8}{memory.sampled_peak_kb / 1024:8.1f} MB",
        f"  peak, VmHWM since the reset                   {hwm:>11}",
        f"  growth at the peak                            "
        f"{(memory.peak_kb - memory.idle_kb) / 1024:8.1f} MB "
        f"(whole uploads held in memory would be >= {buffered:.0f} MB)",
        f"  growth per concurrent {size_label(size)} upload"
        f"{'':18}{memory.growth_mb_per_upload:8.2f} MB",
        f"  RSS 1 s after the last upload                 {memory.after_kb / 1024:8.1f} MB "
        f"({(memory.after_kb - memory.idle_kb) / 1024:+.1f} MB kept)",
        f"  uploads spooled to disk at once (max)         {memory.max_spooled:8d}",
    ]
    if memory.end_kb is not None:
        lines.append(
            f"  RSS at idle after the whole run               {memory.end_kb / 1024:8.1f} MB "
            f"({(memory.end_kb - memory.idle_kb) / 1024:+.1f} MB)"
        )
    return lines


def refusals_table(refusals: Sequence[Refusal], total: int) -> str:
    header = (
        "client",
        "body",
        "trials",
        "413 read",
        "cut off",
        "time to answer, ms",
        "body sent by then, MB",
        "errors",
    )
    table = []
    for declared, client in itertools.product((True, False), CLIENTS):
        group = [r for r in refusals if r.client == client and r.declared == declared]
        if not group:
            continue
        errors = [r.error for r in group if r.error]
        table.append(
            (
                client,
                f"{total / MB:g} MB, " + ("Content-Length" if declared else "chunked"),
                str(len(group)),
                str(sum(r.answered for r in group)),
                str(sum(r.cut_off for r in group)),
                " / ".join(f"{r.seconds * 1000:.0f}" for r in group),
                " / ".join(f"{r.sent / MB:.2f}" for r in group),
                f"{len(errors)}: {errors[0][:50]}" if errors else "0",
            )
        )
    return render(header, table, left=2)


def scans_table(scans: Sequence[Scans]) -> str:
    header = (
        "files",
        "worker poll_delay",
        "scans",
        "drain s",
        "scans/s",
        "MB/s",
        "busy s",
        "scans/s busy",
        "job p50 ms",
        "job p95 ms",
        "worker CPU",
        "failed",
        "statuses",
    )
    table = []
    for s in scans:
        runs = s.run_ms or [math.nan]
        r = s.result
        table.append(
            (
                size_label(s.size),
                r.poll,
                str(r.jobs),
                f"{r.drain_seconds:.2f}",
                f"{r.jobs_per_second:.1f}",
                f"{s.mb_per_second:.1f}",
                f"{s.busy_seconds:.2f}",
                f"{s.busy_per_second:.1f}",
                f"{percentile(runs, 50):.0f}",
                f"{percentile(runs, 95):.0f}",
                f"{100 * r.cpu_seconds / r.run_seconds:.0f} %" if r.run_seconds else "-",
                str(r.failed + r.retried + (1 if r.error else 0)),
                ", ".join(f"{k} {v}" for k, v in sorted(s.statuses.items())),
            )
        )
    return render(header, table, left=2)


# --------------------------------------------------------------------------- main


@dataclass
class Outcome:
    rows: list[Row]
    memory: Memory
    refusals: list[Refusal]
    scans: list[Scans]
    stored_bytes: int
    accepted_bytes: int
    log_problems: list[str]

    @property
    def failed(self) -> bool:
        return (
            any(r.errors for r in self.rows)
            or self.memory.errors > 0
            or not all(r.cut_off for r in self.refusals)
            or any(
                s.result.failed
                or s.result.retried
                or s.result.error
                or set(s.statuses) != {"AWAITING_REVIEW"}
                for s in self.scans
            )
        )


def stored_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


async def benchmark(args: argparse.Namespace, settings: Settings, storage: Path) -> Outcome:
    assert settings.redis_url is not None
    started = time.perf_counter()
    roster = await seed_class(settings, STUDENTS)
    print(f"seeded one classroom of {STUDENTS} students in {time.perf_counter() - started:.1f} s")
    await flush_redis(settings.redis_url)
    env = server_env(settings)
    env["ROLLCALL_STORAGE_URL"] = settings.storage_url
    rng = random.Random(args.seed)
    sizes = [int(mb * MB) for mb in args.size_mb]
    contents = {size: pdf_of_size(size, rng) for size in sorted(set(sizes))}
    biggest = pdf_of_size(MAX_FILE_SIZE, rng)
    multipart = Multipart.build(cover_dates())
    arq = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        async with (
            running_server(env) as server,
            httpx.AsyncClient(
                base_url=server.base_url,
                timeout=REQUEST_TIMEOUT,
                limits=httpx.Limits(max_connections=max(args.concurrency) + 2),
            ) as client,
        ):
            print(f"server pid {server.pid} at {server.base_url}, files in {storage}", flush=True)
            try:
                return await measure(
                    args, settings, server, client, arq, roster, multipart, contents, biggest
                )
            except BaseException:
                print(f"\n--- server (pid {server.pid}) log tail ---\n{server.log_tail(40)}")
                raise
    finally:
        await arq.aclose()
        if not args.keep:
            await flush_redis(settings.redis_url)


async def measure(
    args: argparse.Namespace,
    settings: Settings,
    server: ServerProcess,
    client: httpx.AsyncClient,
    arq: ArqRedis,
    roster: Roster,
    multipart: Multipart,
    contents: dict[int, bytes],
    biggest: bytes,
) -> Outcome:
    uploader = Uploader(client, roster, multipart)
    spool_dir = tempfile.gettempdir()
    accepted = 0
    # Warm-up: imports, pools, the thread pool and first-call costs of every size.
    for content in [*contents.values(), biggest] * args.warmup:
        _, error = await uploader.upload(content)
        if error is not None:
            raise BenchmarkError(f"warm-up upload failed: {error}")
        accepted += len(content)

    print(
        f"memory: {args.memory_rounds} x {args.memory_concurrency} concurrent "
        f"{size_label(len(biggest))} uploads…",
        flush=True,
    )
    memory = await measure_memory(uploader, server, spool_dir, biggest, args)
    accepted += (memory.rounds * memory.concurrency - memory.errors) * len(biggest)
    print("\n".join(memory_lines(memory, len(biggest))), flush=True)
    print("scanning the warm-up's and the memory run's files (untimed)…", flush=True)
    await scan_all(settings, arq, len(biggest), args.patched_poll_delay)

    rows: list[Row] = []
    scans: list[Scans] = []
    for size, content in contents.items():
        for concurrency in args.concurrency:
            row = await measure_row(uploader, server, spool_dir, content, args.files, concurrency)
            rows.append(row)
            accepted += row.done * size
            print(describe_row(row), flush=True)
        scan, scanned = await scan_all(settings, arq, size, None)
        scans.append(scan)
        print(describe_scans(scan), flush=True)
        if not args.no_patched:
            await requeue_scans(settings, arq, scanned)
            scan, _ = await scan_all(settings, arq, size, args.patched_poll_delay)
            scans.append(scan)
            print(describe_scans(scan), flush=True)

    total = int(args.oversize_mb * MB)
    print(f"oversized: {args.oversize_trials} trials per way of a {total / MB:g} MB body…")
    refusals = await measure_refusals(server, multipart, roster, args)
    for refusal in refusals:
        print(
            f"  {refusal.client:10} {'declared' if refusal.declared else 'chunked '}: "
            f"status {refusal.status} after {refusal.seconds * 1000:.0f} ms, "
            f"{refusal.sent / MB:.2f} MB sent{'; ' + refusal.error if refusal.error else ''}",
            flush=True,
        )
    # The server still answers, and kept nothing of the refused bodies.
    _, error = await uploader.upload(contents[min(contents)])
    if error is not None:
        raise BenchmarkError(f"an upload after the oversized ones failed: {error}")
    accepted += min(contents)
    await scan_all(settings, arq, min(contents), args.patched_poll_delay)
    memory.end_kb = await idle_rss_kb(server.pid)

    storage = Path(urlsplit(settings.storage_url).path)
    return Outcome(
        rows=rows,
        memory=memory,
        refusals=refusals,
        scans=scans,
        stored_bytes=stored_size(storage),
        accepted_bytes=accepted,
        log_problems=log_problems(server),
    )


def report(outcome: Outcome, args: argparse.Namespace) -> None:
    print()
    print("uploads (latency: request start to the whole answer; MB/s of file content):")
    print(rows_table(outcome.rows))
    print()
    print(
        f"server memory, {outcome.memory.rounds} rounds of {outcome.memory.concurrency} "
        f"concurrent {size_label(MAX_FILE_SIZE)} uploads:"
    )
    print("\n".join(memory_lines(outcome.memory, MAX_FILE_SIZE)))
    print()
    total = int(args.oversize_mb * MB)
    print(
        f"oversized body (limit {MAX_MULTIPART_BODY / MB:.2f} MB; time and bytes sent per trial):"
    )
    print(refusals_table(outcome.refusals, total))
    print()
    print("scans (both workers in burst mode, no cron jobs, the built-in signature scanner):")
    print(scans_table(outcome.scans))
    print()
    print(
        f"stored on disk {outcome.stored_bytes / MB:.1f} MB; accepted uploads "
        f"{outcome.accepted_bytes / MB:.1f} MB"
        + ("" if outcome.stored_bytes == outcome.accepted_bytes else "  (MISMATCH)")
    )
    if outcome.log_problems:
        print(f"\nthe server logged {len(outcome.log_problems)} warnings/errors; the first:")
        print("\n".join(f"  {line}" for line in outcome.log_problems[:10]))
    print(
        "(MB = 1,048,576 bytes. server CPU: 100 % = one core, over the row's wall time. peak "
        "RSS: the server's VmRSS sampled every 20 ms. spooled: most uploads the server held at "
        "once as deleted temporary files. drain s: workers started -> last scan done; busy s: "
        "first "
        "scan started -> last done; job p50/p95: each scan job's own run time, 10 at a time.)"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.uploads",
        description="Latency, memory and refusals of uploadMedicalCertificate, and scan speed.",
    )
    parser.add_argument("--files", type=int, default=100, help="uploads per size and concurrency")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 8], help="concurrent clients per row"
    )
    parser.add_argument(
        "--size-mb",
        type=float,
        nargs="+",
        default=[0.1, 1.0, 10.0],
        help="file sizes in MB (1,048,576 bytes), at most 10",
    )
    parser.add_argument(
        "--memory-concurrency", type=int, default=8, help="simultaneous 10 MB uploads"
    )
    parser.add_argument(
        "--memory-rounds", type=int, default=3, help="bursts in the memory measurement"
    )
    parser.add_argument("--oversize-mb", type=float, default=50.0, help="the oversized body")
    parser.add_argument(
        "--oversize-trials", type=int, default=3, help="trials per client and framing"
    )
    parser.add_argument(
        "--patched-poll-delay",
        type=float,
        default=0.05,
        help="both workers' poll delay in the second scan pass (seconds)",
    )
    parser.add_argument(
        "--no-patched", action="store_true", help="skip the second scan pass (patched poll delay)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed uploads of each size")
    add_server_arguments(parser, redis_default=DEFAULT_REDIS_URL)
    parser.add_argument("--seed", type=int, default=1, help="random seed for the files")
    parser.add_argument(
        "--keep", action="store_true", help="keep the database, Redis data and stored files"
    )
    args = parser.parse_args(argv)
    smallest = len(files.pdf(b"x"))
    if any(not smallest <= mb * MB <= MAX_FILE_SIZE for mb in args.size_mb):
        parser.error(f"--size-mb must be from {smallest} bytes to {MAX_FILE_SIZE // MB} MB")
    if args.files < 1 or min(args.concurrency) < 1 or args.memory_concurrency < 1:
        parser.error("--files, --concurrency and --memory-concurrency must be at least 1")
    if args.memory_rounds < 1 or args.oversize_trials < 0 or args.warmup < 0:
        parser.error("--memory-rounds must be at least 1; the others not negative")
    if args.oversize_mb * MB <= MAX_MULTIPART_BODY:
        parser.error(f"--oversize-mb must be over the limit, {MAX_MULTIPART_BODY / MB:.2f} MB")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # scratch_database reads the servers' addresses from the environment.
    os.environ["ROLLCALL_DATABASE_URL"] = args.database_url
    os.environ["ROLLCALL_REDIS_URL"] = args.redis_url
    storage = Path(tempfile.mkdtemp(prefix="rollcall-bench-uploads-"))
    started = time.perf_counter()
    try:
        with scratch_database(
            "rollcall_bench_uploads", redis_default=DEFAULT_REDIS_URL, keep=args.keep
        ) as db:
            settings = dataclasses.replace(
                db.settings,
                storage_url=f"file://{storage}",
                clamd_url=None,
                scan_deny_sha256=frozenset(),
            )
            redis = urlsplit(settings.redis_url or "")
            print(
                f"rollcall upload benchmark: {os.cpu_count()} CPUs, {args.files} uploads per "
                f"row, sizes {', '.join(size_label(int(mb * MB)) for mb in args.size_mb)}, "
                f"clients {', '.join(map(str, args.concurrency))}, database {db.name}, Redis "
                f"{redis.hostname}:{redis.port}{redis.path} (flushed), temporary files in "
                f"{tempfile.gettempdir()}",
                flush=True,
            )
            outcome: Outcome = run(benchmark(args, settings, storage))
    finally:
        if args.keep:
            print(f"kept the stored files in {storage}")
        else:
            shutil.rmtree(storage, ignore_errors=True)
    report(outcome, args)
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    if outcome.failed:
        print("some uploads, refusals or scans FAILED (see above)")
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
