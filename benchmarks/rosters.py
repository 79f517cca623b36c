"""Roster import: a ``--rows``-row roster imported end to end, again unchanged, then as a dry run
(see benchmarks/README.md)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson

from benchmarks import harness
from benchmarks.harness import Cell, GraphQL
from graph.app import create_app
from jobs.worker import create_workers, run_workers, shared_context
from services.auth import hash_password
from services.models import Role, Subject, Tenant, User
from services.platform.settings import Settings
from services.rosters import parse_roster

IMPORT = """mutation ImportRoster($file: Upload!, $dryRun: Boolean) {
  importRoster(file: $file, dryRun: $dryRun) { id }
}"""
PROGRESS = """query RosterImport($id: ID!) {
  rosterImport(id: $id) { status totalRows created updated unchanged errors { line } }
}"""
RUNS = ("first import", "same file again", "dry run")


def roster(rows: int, classrooms: int) -> bytes:
    lines = ["classroom,student_name,student_email,teacher_email"]
    for n in range(rows):
        room = n % classrooms
        lines.append(
            f"Class {room:03d},Student {n:05d} Familyname,student{n:05d}@bench.school,"
            f"teacher{room:03d}@bench.school"
        )
    return ("\n".join(lines) + "\n").encode()


async def school_admin(settings: Settings) -> str:
    """One school with three subjects and its admin; the admin's token."""
    async with (
        harness.database_sessions(settings, pool_max=2) as sessions,
        sessions() as session,
        session.begin(),
    ):
        tenant = Tenant(slug="bench-rosters", name="Roster School")
        session.add(tenant)
        await session.flush()
        admin = User(
            tenant_id=tenant.id,
            email="admin@bench.school",
            role=Role.ADMIN,
            password_hash=hash_password("not used by the benchmark"),
        )
        session.add_all(
            [admin, *(Subject(tenant_id=tenant.id, name=f"Subject {n}") for n in range(3))]
        )
    return harness.token_for(settings, admin)


async def one_import(
    graphql: GraphQL, token: str, content: bytes, dry_run: bool
) -> tuple[float, dict[str, Any]]:
    """Upload, then poll every 20 ms until the import ends (the workers run meanwhile)."""
    operations = orjson.dumps({"query": IMPORT, "variables": {"file": None, "dryRun": dry_run}})
    form = {"operations": operations.decode(), "map": '{"0":["variables.file"]}'}
    files = {"0": ("roster.csv", content, "text/csv")}
    headers = {"authorization": f"Bearer {token}", "apollo-require-preflight": "true"}
    started = time.perf_counter()
    response = await graphql.client.post("/graphql", data=form, files=files, headers=headers)
    variables = {"id": response.json()["data"]["importRoster"]["id"]}
    while True:
        result: dict[str, Any] = (await graphql.data(PROGRESS, variables, token))["rosterImport"]
        if result["status"] in {"SUCCEEDED", "FAILED"}:
            return time.perf_counter() - started, result
        await asyncio.sleep(0.02)


async def measure(settings: Settings, content: bytes, rows: int) -> list[list[Cell]]:
    """A row per run: seconds, rows/s, status, created, updated, unchanged, errors."""
    token = await school_admin(settings)
    runs: list[list[Cell]] = []
    async with (
        shared_context(settings) as shared,
        harness.in_process(create_app(settings)) as graphql,
    ):
        workers = asyncio.create_task(run_workers(create_workers(settings, shared, cron_jobs=())))
        for run in RUNS:
            seconds, result = await one_import(graphql, token, content, run == "dry run")
            counts = [result[name] for name in ("status", "created", "updated", "unchanged")]
            runs.append([run, seconds, rows / seconds, *counts, len(result["errors"])])
        workers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await workers
    return runs


def main() -> int:
    arguments = harness.parser("rosters", __doc__.splitlines()[0], strict=False)
    arguments.add_argument("--rows", type=int, default=5_000)
    arguments.add_argument("--classrooms", type=int, default=40)
    args = arguments.parse_args()
    report = harness.Report("rosters", as_json=args.json)
    content = roster(args.rows, args.classrooms)
    started = time.perf_counter()
    parsed = parse_roster(content)
    parsing = time.perf_counter() - started
    text = f"{args.rows:,} rows in {args.classrooms} classrooms, {len(content) / 1e6:.2f} MB"
    report.figure("roster MB", len(content) / 1e6, text)
    text = f"   reading and checking the CSV alone: {parsing:.2f} s"
    report.figure("reading and checking the CSV alone s", parsing, text)
    with harness.scratch_database("rosters", redis_db=9, keep=args.keep) as db:
        runs = asyncio.run(measure(db.settings, content, args.rows))
    header = ["run", "s", "rows/s", "status", "created", "updated", "unchanged", "errors"]
    report.table("imports", header, runs, formats={"rows/s": "{:,.0f}"})
    n = args.rows
    wanted = [["SUCCEEDED", *counts, 0] for counts in ([n, 0, 0], [0, 0, n], [0, 0, n])]
    as_wanted = len(parsed.rows) == n and [run[3:] for run in runs] == wanted
    detail = f"{n:,} rows read; created/updated/unchanged ({n}, 0, 0), (0, 0, {n}), (0, 0, {n})"
    report.check("every import SUCCEEDED as expected, without errors", as_wanted, detail)
    return report.finish(failed=False, strict=True)


if __name__ == "__main__":
    raise SystemExit(main())
