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
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from arq.connections import RedisSettings, create_pool
from sqlalchemy import func, select

from benchmarks import harness
from benchmarks.harness import Cell, Report
from services.downloads import Links
from services.exports import build_export
from services.models import AttendanceRecord, Export, ExportFormat, ExportStatus
from services.platform.db import SessionFactory
from services.platform.settings import Settings
from services.platform.storage import create_store
from services.seed import DEMO_PERIODS

MB = 1024 * 1024
LINK_SECRET = "benchmark-link-secret-of-no-importance"
HEADER = ("rows", "format", "build s", "rows/s", "file MB", "MB/s", "RSS before MB")
HEADER += ("peak RSS growth MB", "growth / file", "status")
FORMATS = {name: "{:.1f}" for name in HEADER if "MB" in name}
FORMATS |= {"rows/s": "{:,.0f}", "peak RSS growth MB": "{:+.1f}", "growth / file": "{:.1f} %"}


async def seed(
    sessions: SessionFactory, rows: int, days: int, report: Report
) -> tuple[int, dict[str, Any]]:
    """A school of at least ``rows`` attendance rows (whole students): how many it has, and the
    columns of an export of them all."""
    started = time.perf_counter()
    students = math.ceil(rows / (days * DEMO_PERIODS))
    shape = {"prefix": f"bench-export-{rows}", "students": students, "days": days}
    admin, _ = await harness.bulk_class(sessions, **shape)
    of_school = AttendanceRecord.tenant_id == admin.tenant_id
    dates = select(func.min(AttendanceRecord.date), func.max(AttendanceRecord.date), func.count())
    async with sessions() as session:
        first, last, count = (await session.execute(dates.where(of_school))).one()
    report.say(f"seeded {count:,} rows in {time.perf_counter() - started:.1f} s")
    export = {"tenant_id": admin.tenant_id, "requested_by": admin.id}
    return count, export | {"date_from": first, "date_to": last}


async def build(
    services: dict[str, Any], rows: int, export: dict[str, Any], export_format: ExportFormat
) -> tuple[Cell, ...]:
    """Queue nothing: a PENDING export, then the job's service (``build_export`` with
    ``services``), timed and measured; a row of the table."""
    sessions = services["session_factory"]
    async with sessions() as session, session.begin():
        pending = Export(**export, format=export_format, status=ExportStatus.PENDING)
        session.add(pending)
        await session.flush()
        export_id = pending.id
    gc.collect()
    rss_before = harness.status_kb()["VmRSS"]
    harness.reset_peak()
    started = time.perf_counter()
    status = await build_export(**services, tenant_id=export["tenant_id"], export_id=export_id)
    seconds = time.perf_counter() - started
    growth = harness.status_kb()["VmHWM"] - rss_before
    async with sessions() as session:
        done = await session.get(Export, export_id)
    assert done is not None
    size, mb = done.size or 0, (done.size or 0) / MB
    share = 100 * growth * 1024 / size if size else None
    ready = status is ExportStatus.READY and done.row_count == rows
    outcome = "READY" if ready else f"FAILED ({status}, {done.row_count} rows)"
    figures = (rows / seconds, mb, mb / seconds, rss_before / 1024, growth / 1024, share)
    return (rows, export_format.value, seconds, *figures, outcome)


def describe(row: tuple[Cell, ...]) -> str:
    """A build's line as it ends: rows, format, seconds, rows/s, MB and the RSS growth."""
    rows, name, seconds, rate, mb, _, _, growth, _, status = row
    failed = "" if status == "READY" else f"  {status}"
    return (
        f"  {rows:>8,} rows {name:4}: {seconds:6.2f} s, {rate:>9,.0f} rows/s, {mb:7.1f} MB, "
        f"peak RSS {growth:+6.1f} MB{failed}"
    )


async def benchmark(
    rows: Sequence[int], formats: Sequence[str], days: int, settings: Settings, report: Report
) -> list[tuple[Cell, ...]]:
    assert settings.database_url is not None and settings.redis_url is not None
    assert settings.storage_url is not None
    async with (
        harness.database_sessions(settings, pool_max=10) as sessions,
        aioredis.Redis.from_url(settings.redis_url) as redis,
        await create_pool(RedisSettings.from_dsn(settings.redis_url)) as arq,
    ):
        store, links = create_store(settings.storage_url), Links(secret=LINK_SECRET)
        services = {"session_factory": sessions, "store": store, "links": links, "redis": redis}
        services |= {"queue": arq, "public_url": None, "email_available": False}
        schools = [await seed(sessions, size, days, report) for size in rows]
        await harness.execute_autocommit(settings.database_url, "VACUUM (ANALYZE)")
        # Warm-up: imports, pools, the thread pool and first-call costs.
        await build(services, *schools[0], ExportFormat.CSV)
        rss = harness.status_kb()["VmRSS"] / 1024
        report.say(f"builds (this process's RSS at start {rss:.1f} MB):")
        results = []
        for count, export in schools:
            for name in formats:
                results.append(await build(services, count, export, ExportFormat(name)))
                report.say(describe(results[-1]))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    about = "Time and memory of building attendance exports."
    arguments = harness.parser("exports", about, strict=False)
    add, names = arguments.add_argument, [f.value for f in ExportFormat]
    rows = [10_000, 100_000, 500_000]
    add("--rows", type=int, nargs="+", default=rows, help="attendance rows per school (at least)")
    add("--formats", nargs="+", choices=names, default=names)
    add("--days", type=int, default=50, help="seeded school days")
    args = arguments.parse_args(argv)
    if min(args.rows) < 1 or args.days < 1:
        arguments.error("--rows and --days must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = Report("exports", as_json=args.json)
    storage = tempfile.mkdtemp(prefix="rollcall-bench-exports-")
    try:
        with harness.scratch_database("exports", redis_db=13, keep=args.keep) as db:
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
    report.table("builds", HEADER, results, left=2, formats=FORMATS)
    return report.finish(failed=any(row[-1] != "READY" for row in results))


if __name__ == "__main__":
    sys.exit(main())
