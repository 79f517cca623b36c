"""Audit log upkeep benchmark: archiving a month, and moving rows out of the default partition.

Creates a throwaway database (``ROLLCALL_DATABASE_URL``'s server), then measures:

A. ``archive_audit_logs`` over one monthly partition of ``--rows`` entries (January 2019, so
   that it is past retention) into ``--storage-url`` (default: local disk in a temporary
   directory; ``s3://…`` for S3): the time, rows/s, the object's size against the JSON Lines it
   holds, and the growth of this process's peak RSS (the rows stream through a server-side
   cursor, so it should not grow with ``--rows``).
B. ``ensure_partitions`` making a month whose ``--rows`` entries wait in the default partition
   (March 2041): the time to move them into the new partition and attach it.

Run from the repository root::

    .venv/bin/python -m benchmarks.audit [--rows 100000] [--storage-url URL] [--keep]

A script, not a test: it prints figures and exits 1 when a run did not archive or move every row.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ``python benchmarks/audit.py`` finds the project packages

from sqlalchemy import text  # noqa: E402

from benchmarks.foundation import scratch_database  # noqa: E402
from services.audit_maintenance import archive_audit_logs, ensure_partitions  # noqa: E402
from services.platform.db import SessionFactory, create_engine, create_session_factory  # noqa: E402
from services.platform.storage import LocalStore, create_store  # noqa: E402

INSERT_ENTRIES = """
INSERT INTO audit_logs (timestamp, tenant_id, user_id, action, resource, resource_id, success,
                        ip_address, user_agent, metadata)
SELECT CAST(:start AS timestamptz) + n * interval '1 second', gen_random_uuid(),
       gen_random_uuid(), 'LOGIN_SUCCESS', 'user', n::text, true, '203.0.113.9',
       'Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0',
       jsonb_build_object('n', n, 'reason', 'benchmark entry')
FROM generate_series(1, :rows) AS n
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def insert_entries(session_factory: SessionFactory, *, start: datetime, rows: int) -> None:
    async with session_factory() as session, session.begin():
        await session.execute(text(INSERT_ENTRIES), {"start": start, "rows": rows})


async def measure(database_url: str, rows: int, storage_url: str | None) -> bool:
    engine = create_engine(database_url, pool_max=4)
    session_factory = create_session_factory(engine)
    ok = True
    try:
        january = datetime(2019, 1, 1, tzinfo=UTC)
        await ensure_partitions(session_factory=session_factory, months_ahead=0, now=january)
        await insert_entries(session_factory, start=january, rows=rows)
        async with session_factory() as session:
            raw = await session.scalar(
                text("SELECT sum(octet_length(row_to_json(a)::text) + 1) FROM audit_logs_2019_01 a")
            )
        with tempfile.TemporaryDirectory() as root:
            store = LocalStore(Path(root)) if storage_url is None else create_store(storage_url)
            await store.ensure_ready()
            rss_before = peak_rss_mb()
            started = time.perf_counter()
            report = await archive_audit_logs(
                session_factory=session_factory,
                store=store,
                min_rows=0,
                retention_days=90,
                now=datetime(2019, 6, 1, tzinfo=UTC),
            )
            elapsed = time.perf_counter() - started
        print(
            f"A. archive {report.rows:,} rows: {elapsed:.2f} s, {report.rows / elapsed:,.0f} rows/s"
        )
        print(f"   object {report.bytes / 1e6:.2f} MB of {raw / 1e6:.1f} MB JSON Lines")
        print(f"   peak RSS grew {peak_rss_mb() - rss_before:.1f} MB")
        ok &= report.rows == rows

        march = datetime(2041, 3, 1, tzinfo=UTC)
        await insert_entries(session_factory, start=march, rows=rows)
        started = time.perf_counter()
        made = await ensure_partitions(session_factory=session_factory, months_ahead=0, now=march)
        elapsed = time.perf_counter() - started
        moved = sum(partition.moved_rows for partition in made)
        print(f"B. move {moved:,} rows out of the default partition and attach: {elapsed:.2f} s")
        ok &= moved == rows
    finally:
        await engine.dispose()
    return ok


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    arguments.add_argument("--rows", type=int, default=100_000)
    arguments.add_argument("--storage-url", help="the store to archive to (default: local disk)")
    arguments.add_argument("--keep", action="store_true", help="keep the database")
    options = arguments.parse_args()
    with scratch_database(
        "rollcall_bench_audit", redis_default="redis://127.0.0.1:6379/9", keep=options.keep
    ) as scratch:
        assert scratch.settings.database_url is not None
        ok = asyncio.run(measure(scratch.settings.database_url, options.rows, options.storage_url))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
