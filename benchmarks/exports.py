"""Export benchmark: ``build_export`` over 10k, 100k and 500k attendance rows, time and memory.

Creates a throwaway database and seeds one school per size with ``services.bulk_seed.seed_bulk``
(one classroom, ``--days`` school days x 6 periods, as many students as the size needs), then
runs the export job's service, ``services.exports.build_export``, in this process for each size
and format, storing on local disk in a temporary directory. For each build it prints the time,
rows/s, the file's size, and the growth of this process's peak RSS over its RSS before the build
(VmHWM, reset through ``/proc/self/clear_refs`` before each build). Streaming keeps that growth
flat: a build that held its rows or its file in memory would grow by at least the file's size.

Run from the repository root::

    .venv/bin/python -m benchmarks.exports [--rows 10000 100000 500000] [--formats CSV JSON]

A script, not a test: it prints figures and exits 1 when a build did not end READY with every
row. Redis (``ROLLCALL_REDIS_URL`` or ``redis://127.0.0.1:6379/13``) only carries the ready
notifications' live events; nothing is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ``python benchmarks/exports.py`` finds the project packages

import redis.asyncio as aioredis  # noqa: E402
from arq.connections import ArqRedis, RedisSettings, create_pool  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from benchmarks.foundation import execute_autocommit, scratch_database  # noqa: E402
from benchmarks.jobs import render  # noqa: E402
from services.bulk_seed import seed_bulk  # noqa: E402
from services.downloads import Links  # noqa: E402
from services.exports import build_export  # noqa: E402
from services.models import (  # noqa: E402
    AttendanceRecord,
    Export,
    ExportFormat,
    ExportStatus,
    Role,
    User,
)
from services.platform.db import SessionFactory, create_engine, create_session_factory  # noqa: E402
from services.platform.settings import Settings  # noqa: E402
from services.platform.storage import ObjectStore, create_store  # noqa: E402
from services.seed import DEMO_PERIODS  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
SEED_PREFIX = "bench-export"
MB = 1024 * 1024
LINK_SECRET = "benchmark-link-secret-of-no-importance"

logger = logging.getLogger("benchmarks.exports")


@dataclass(frozen=True)
class Seeded:
    rows: int
    tenant_id: uuid.UUID
    admin_id: uuid.UUID
    first_day: date
    last_day: date
    seconds: float


@dataclass(frozen=True)
class Build:
    rows: int
    export_format: ExportFormat
    status: ExportStatus | None
    row_count: int
    size: int
    seconds: float
    rss_before_kb: int
    peak_kb: int

    @property
    def failed(self) -> bool:
        return self.status is not ExportStatus.READY or self.row_count != self.rows

    @property
    def growth_kb(self) -> int:
        return self.peak_kb - self.rss_before_kb


# --------------------------------------------------------------------------- memory


def status_kb(field: str) -> int:
    """A ``/proc/self/status`` figure (VmRSS, VmHWM) in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """VmHWM back to the current RSS (Linux 4.0+), so each build's peak is its own."""
    Path("/proc/self/clear_refs").write_text("5")


# --------------------------------------------------------------------------- seeding


async def seed(session_factory: SessionFactory, rows: int, days: int) -> Seeded:
    started = time.perf_counter()
    students = math.ceil(rows / (days * DEMO_PERIODS))
    [tenant_id] = await seed_bulk(
        session_factory=session_factory,
        today=datetime.now(UTC).date(),
        schools=1,
        classes=1,
        students=students,
        days=days,
        prefix=f"{SEED_PREFIX}-{rows}",
    )
    async with session_factory() as session:
        admin_id = await session.scalar(
            select(User.id).where(User.tenant_id == tenant_id, User.role == Role.ADMIN)
        )
        first, last, count = (
            await session.execute(
                select(
                    func.min(AttendanceRecord.date),
                    func.max(AttendanceRecord.date),
                    func.count(),
                ).where(AttendanceRecord.tenant_id == tenant_id)
            )
        ).one()
    assert admin_id is not None
    return Seeded(
        rows=count,
        tenant_id=tenant_id,
        admin_id=admin_id,
        first_day=first,
        last_day=last,
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------- one build


async def build(
    session_factory: SessionFactory,
    store: ObjectStore,
    redis: aioredis.Redis,
    arq: ArqRedis,
    seeded: Seeded,
    export_format: ExportFormat,
) -> Build:
    """Queue nothing: a PENDING export row, then the job's service, timed and measured."""
    async with session_factory() as session, session.begin():
        export = Export(
            tenant_id=seeded.tenant_id,
            requested_by=seeded.admin_id,
            format=export_format,
            date_from=seeded.first_day,
            date_to=seeded.last_day,
            status=ExportStatus.PENDING,
        )
        session.add(export)
        await session.flush()
        export_id = export.id
    gc.collect()
    rss_before = status_kb("VmRSS")
    reset_peak()
    started = time.perf_counter()
    status = await build_export(
        session_factory=session_factory,
        store=store,
        links=Links(secret=LINK_SECRET),
        redis=redis,
        queue=arq,
        tenant_id=seeded.tenant_id,
        export_id=export_id,
        public_url=None,
        email_available=False,
    )
    seconds = time.perf_counter() - started
    peak = status_kb("VmHWM")
    async with session_factory() as session:
        done = await session.scalar(select(Export).where(Export.id == export_id))
    assert done is not None
    return Build(
        rows=seeded.rows,
        export_format=export_format,
        status=status,
        row_count=done.row_count or 0,
        size=done.size or 0,
        seconds=seconds,
        rss_before_kb=rss_before,
        peak_kb=peak,
    )


def describe(result: Build) -> str:
    return (
        f"  {result.rows:>8,} rows {result.export_format.value:4}: {result.seconds:6.2f} s, "
        f"{result.rows / result.seconds:>9,.0f} rows/s, {result.size / MB:7.1f} MB, "
        f"peak RSS {result.growth_kb / 1024:+6.1f} MB"
        + ("" if not result.failed else f"  FAILED ({result.status}, {result.row_count} rows)")
    )


def table(results: Sequence[Build]) -> str:
    header = (
        "rows",
        "format",
        "build s",
        "rows/s",
        "file MB",
        "MB/s",
        "RSS before MB",
        "peak RSS growth MB",
        "growth / file",
        "status",
    )
    rows = [
        (
            f"{r.rows:,}",
            r.export_format.value,
            f"{r.seconds:.2f}",
            f"{r.rows / r.seconds:,.0f}",
            f"{r.size / MB:.1f}",
            f"{r.size / MB / r.seconds:.1f}",
            f"{r.rss_before_kb / 1024:.1f}",
            f"{r.growth_kb / 1024:+.1f}",
            f"{100 * r.growth_kb * 1024 / r.size:.1f} %" if r.size else "-",
            "FAILED" if r.failed else "READY",
        )
        for r in results
    ]
    return render(header, rows, left=2)


# --------------------------------------------------------------------------- main


async def benchmark(args: argparse.Namespace, settings: Settings, storage: Path) -> list[Build]:
    assert settings.database_url is not None and settings.redis_url is not None
    engine = create_engine(settings.database_url, pool_max=10)
    session_factory = create_session_factory(engine)
    store = create_store(f"file://{storage}")
    redis = aioredis.Redis.from_url(settings.redis_url)
    arq = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    results: list[Build] = []
    try:
        schools = []
        for rows in args.rows:
            seeded = await seed(session_factory, rows, args.days)
            print(f"seeded {seeded.rows:,} rows in {seeded.seconds:.1f} s", flush=True)
            schools.append(seeded)
        await execute_autocommit(settings.database_url, "VACUUM (ANALYZE)")
        # Warm-up: imports, pools, the thread pool and first-call costs.
        await build(session_factory, store, redis, arq, schools[0], ExportFormat.CSV)
        print(f"builds (this process's RSS at start {status_kb('VmRSS') / 1024:.1f} MB):")
        for seeded in schools:
            for name in args.formats:
                result = await build(session_factory, store, redis, arq, seeded, ExportFormat(name))
                results.append(result)
                print(describe(result), flush=True)
    finally:
        await arq.aclose()
        await redis.aclose()
        await engine.dispose()
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.exports",
        description="Time and memory of building attendance exports of growing size.",
    )
    parser.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[10_000, 100_000, 500_000],
        help="attendance rows per seeded school (rounded up to whole students)",
    )
    parser.add_argument(
        "--formats",
        nargs="+",
        choices=[f.value for f in ExportFormat],
        default=[f.value for f in ExportFormat],
    )
    parser.add_argument("--days", type=int, default=50, help="seeded school days")
    parser.add_argument("--keep", action="store_true", help="keep the database and the files")
    args = parser.parse_args(argv)
    if min(args.rows) < 1 or args.days < 1:
        parser.error("--rows and --days must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    storage = Path(tempfile.mkdtemp(prefix="rollcall-bench-exports-"))
    try:
        with scratch_database(
            "rollcall_bench_exports", redis_default=DEFAULT_REDIS_URL, keep=args.keep
        ) as db:
            settings = dataclasses.replace(db.settings, storage_url=f"file://{storage}")
            print(
                f"rollcall export benchmark: {os.cpu_count()} CPUs, database {db.name}, "
                f"Redis {settings.redis_url}, files in {storage}",
                flush=True,
            )
            results = asyncio.run(benchmark(args, settings, storage))
    finally:
        if args.keep:
            print(f"kept the files in {storage}")
        else:
            shutil.rmtree(storage, ignore_errors=True)
    print()
    print(
        "exports built in this process (build s: job start -> READY committed; peak RSS "
        "growth: VmHWM during the build minus VmRSS before it; growth / file: that growth as a "
        "share of the file's size)"
    )
    print(table(results))
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    failed = any(r.failed for r in results)
    if failed:
        print("some builds FAILED (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
