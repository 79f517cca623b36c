"""Audit log upkeep: archiving a month, moving rows out of the default partition (README.md)."""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from benchmarks import harness
from benchmarks.harness import Cell
from services.audit_maintenance import archive_audit_logs, ensure_partitions
from services.platform.db import SessionFactory
from services.platform.settings import Settings
from services.platform.storage import LocalStore, create_store

INSERT_ENTRIES = """INSERT INTO audit_logs (timestamp, tenant_id, user_id, action, resource,
  resource_id, success, ip_address, user_agent, metadata)
SELECT CAST(:start AS timestamptz) + n * interval '1 second', gen_random_uuid(), gen_random_uuid(),
  'LOGIN_SUCCESS', 'user', n::text, true, '203.0.113.9',
  'Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0', jsonb_build_object('n', n, 'reason',
  'benchmark entry') FROM generate_series(1, :rows) AS n"""
JSON_LINES = "SELECT sum(octet_length(row_to_json(a)::text) + 1) FROM audit_logs_2019_01 a"
JANUARY, JUNE = datetime(2019, 1, 1, tzinfo=UTC), datetime(2019, 6, 1, tzinfo=UTC)
MARCH = datetime(2041, 3, 1, tzinfo=UTC)


async def insert_entries(sessions: SessionFactory, *, start: datetime, rows: int) -> None:
    async with sessions() as session, session.begin():
        await session.execute(text(INSERT_ENTRIES), {"start": start, "rows": rows})


async def measure(settings: Settings, args: argparse.Namespace) -> list[list[Cell]]:
    """A. January 2019 (past retention) archived; B. March 2041 made while its rows wait in
    the default partition. A row per step: rows, s, rows/s, object and JSON Lines MB, RSS."""
    async with harness.database_sessions(settings) as sessions:
        await ensure_partitions(session_factory=sessions, months_ahead=0, now=JANUARY)
        await insert_entries(sessions, start=JANUARY, rows=args.rows)
        async with sessions() as session:
            raw = await session.scalar(text(JSON_LINES))
        with tempfile.TemporaryDirectory() as root:
            store = create_store(args.storage_url) if args.storage_url else LocalStore(Path(root))
            await store.ensure_ready()
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started = time.perf_counter()
            archived = await archive_audit_logs(
                session_factory=sessions, store=store, min_rows=0, retention_days=90, now=JUNE
            )
            seconds = time.perf_counter() - started
        growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kb) / 1024
        await insert_entries(sessions, start=MARCH, rows=args.rows)
        started = time.perf_counter()
        made = await ensure_partitions(session_factory=sessions, months_ahead=0, now=MARCH)
        moving = time.perf_counter() - started
    moved = sum(partition.moved_rows for partition in made)
    rate = archived.rows / seconds
    return [
        ["A. archive", archived.rows, seconds, rate, archived.bytes / 1e6, raw / 1e6, growth],
        ["B. move out of the default partition and attach", moved, moving, None, None, None, None],
    ]


def main() -> int:
    arguments = harness.parser("audit", __doc__.splitlines()[0], strict=False)
    arguments.add_argument("--rows", type=int, default=100_000)
    arguments.add_argument("--storage-url", help="the store to archive to (default: local disk)")
    args = arguments.parse_args()
    report = harness.Report("audit", as_json=args.json)
    with harness.scratch_database("audit", redis_db=9, keep=args.keep) as db:
        rows = asyncio.run(measure(db.settings, args))
    header = ["step", "rows", "s", "rows/s", "object MB", "JSON Lines MB", "peak RSS grew MB"]
    formats = {"rows/s": "{:,.0f}", "JSON Lines MB": "{:.1f}", "peak RSS grew MB": "{:.1f}"}
    report.table("steps", header, rows, formats=formats)
    done = f"{rows[0][1]:,} archived and {rows[1][1]:,} moved of {args.rows:,}"
    report.check("every row archived and moved", rows[0][1] == rows[1][1] == args.rows, done)
    return report.finish(failed=False, strict=True)


if __name__ == "__main__":
    raise SystemExit(main())
