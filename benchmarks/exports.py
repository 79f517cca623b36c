"""Time and memory of ``services.exports.build_export`` over growing attendance exports, built in
this process: see benchmarks/README.md."""

from __future__ import annotations

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

import redis.asyncio as aioredis
from arq.connections import ArqRedis, RedisSettings, create_pool
from sqlalchemy import func, select

from benchmarks.harness import (
    Cell,
    Report,
    execute_autocommit,
    parser,
    reset_peak,
    scratch_database,
    status_kb,
)
from services.bulk_seed import seed_bulk
from services.downloads import Links
from services.exports import build_export
from services.models import AttendanceRecord, Export, ExportFormat, ExportStatus, Role, User
from services.platform.db import SessionFactory, create_engine, create_session_factory
from services.platform.settings import Settings
from services.platform.storage import ObjectStore, create_store
from services.seed import DEMO_PERIODS

SEED_PREFIX = "bench-export"
MB = 1024 * 1024
LINK_SECRET = "benchmark-link-secret-of-no-importance"
HEADER = ("rows", "format", "build s", "rows/s", "file MB", "MB/s", "RSS before MB")
HEADER += ("peak RSS growth MB", "growth / file", "status")
FORMATS = {name: "{:.1f}" for name in HEADER if "MB" in name}
FORMATS |= {"rows/s": "{:,.0f}", "peak RSS growth MB": "{:+.1f}", "growth / file": "{:.1f} %"}


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

    def cells(self) -> tuple[Cell, ...]:
        seconds, mb = self.seconds, self.size / MB
        share = 100 * self.growth_kb * 1024 / self.size if self.size else None
        sizes = (self.rows / seconds, mb, mb / seconds, self.rss_before_kb / 1024)
        memory = (self.growth_kb / 1024, share)
        status = "FAILED" if self.failed else "READY"
        return (self.rows, self.export_format.value, seconds, *sizes, *memory, status)


async def seed(session_factory: SessionFactory, rows: int, days: int) -> Seeded:
    started = time.perf_counter()
    [tenant_id] = await seed_bulk(
        session_factory=session_factory,
        today=datetime.now(UTC).date(),
        schools=1,
        classes=1,
        students=math.ceil(rows / (days * DEMO_PERIODS)),
        days=days,
        prefix=f"{SEED_PREFIX}-{rows}",
    )
    async with session_factory() as session:
        admin_id = await session.scalar(
            select(User.id).where(User.tenant_id == tenant_id, User.role == Role.ADMIN)
        )
        dates = select(
            func.min(AttendanceRecord.date), func.max(AttendanceRecord.date), func.count()
        ).where(AttendanceRecord.tenant_id == tenant_id)
        first, last, count = (await session.execute(dates)).one()
    assert admin_id is not None
    return Seeded(count, tenant_id, admin_id, first, last, time.perf_counter() - started)


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
    rss_before = status_kb()["VmRSS"]
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
    peak = status_kb()["VmHWM"]
    async with session_factory() as session:
        done = await session.scalar(select(Export).where(Export.id == export_id))
    assert done is not None
    counts = (done.row_count or 0, done.size or 0)
    return Build(seeded.rows, export_format, status, *counts, seconds, rss_before, peak)


def describe(result: Build) -> str:
    return (
        f"  {result.rows:>8,} rows {result.export_format.value:4}: {result.seconds:6.2f} s, "
        f"{result.rows / result.seconds:>9,.0f} rows/s, {result.size / MB:7.1f} MB, "
        f"peak RSS {result.growth_kb / 1024:+6.1f} MB"
        + ("" if not result.failed else f"  FAILED ({result.status}, {result.row_count} rows)")
    )


async def benchmark(
    rows: Sequence[int], formats: Sequence[str], days: int, settings: Settings, report: Report
) -> list[Build]:
    assert settings.database_url is not None and settings.redis_url is not None
    engine = create_engine(settings.database_url, pool_max=10)
    session_factory = create_session_factory(engine)
    assert settings.storage_url is not None
    store = create_store(settings.storage_url)
    redis = aioredis.Redis.from_url(settings.redis_url)
    arq = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    results: list[Build] = []
    try:
        schools = []
        for size in rows:
            seeded = await seed(session_factory, size, days)
            report.say(f"seeded {seeded.rows:,} rows in {seeded.seconds:.1f} s")
            schools.append(seeded)
        await execute_autocommit(settings.database_url, "VACUUM (ANALYZE)")
        # Warm-up: imports, pools, the thread pool and first-call costs.
        await build(session_factory, store, redis, arq, schools[0], ExportFormat.CSV)
        report.say(f"builds (this process's RSS at start {status_kb()['VmRSS'] / 1024:.1f} MB):")
        for seeded in schools:
            for name in formats:
                result = await build(session_factory, store, redis, arq, seeded, ExportFormat(name))
                results.append(result)
                report.say(describe(result))
    finally:
        await arq.aclose()
        await redis.aclose()
        await engine.dispose()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser("exports", "Time and memory of building attendance exports.", strict=False)
    arguments.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[10_000, 100_000, 500_000],
        help="attendance rows per seeded school (rounded up to whole students)",
    )
    names = [f.value for f in ExportFormat]
    arguments.add_argument("--formats", nargs="+", choices=names, default=names)
    arguments.add_argument("--days", type=int, default=50, help="seeded school days")
    args = arguments.parse_args(argv)
    if min(args.rows) < 1 or args.days < 1:
        arguments.error("--rows and --days must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = Report("exports", as_json=args.json)
    started = time.perf_counter()
    storage = tempfile.mkdtemp(prefix="rollcall-bench-exports-")
    try:
        with scratch_database("exports", redis_db=13, keep=args.keep) as db:
            settings = dataclasses.replace(db.settings, storage_url=f"file://{storage}")
            report.say(
                f"rollcall export benchmark: {os.cpu_count()} CPUs, {db.describe()}, "
                f"files in {storage}"
            )
            results = asyncio.run(benchmark(args.rows, args.formats, args.days, settings, report))
    finally:
        if args.keep:
            report.say(f"kept the files in {storage}")
        else:
            shutil.rmtree(storage, ignore_errors=True)
    report.say(
        "",
        "exports built in this process (build s: job start -> READY committed; peak RSS "
        "growth: VmHWM during the build minus VmRSS before it; growth / file: that growth as a "
        "share of the file's size)",
    )
    report.table("builds", HEADER, [r.cells() for r in results], left=2, formats=FORMATS)
    report.say(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    return report.finish(failed=any(r.failed for r in results))


if __name__ == "__main__":
    sys.exit(main())
