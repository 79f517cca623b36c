"""Roster import benchmark: a ``--rows``-row roster (default 5,000; the target is under 10 s)
imported end to end, then again (every row unchanged), then as a dry run.

Creates a throwaway database (``ROLLCALL_DATABASE_URL``'s server) with one school, then for each
run: the upload through the GraphQL endpoint (multipart, in-process app), the arq job run by a
real worker on ``--redis-url`` (flushed), until the ``RosterImport`` ends. Prints the time of
each run, its rows per second, and the time the job spent reading the CSV alone.

Run from the repository root::

    .venv/bin/python -m benchmarks.rosters [--rows 5000] [--classrooms 40] [--keep]

A script, not a test: it prints figures and exits 1 when an import did not do what it should.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ``python benchmarks/rosters.py`` finds the project packages

import httpx  # noqa: E402
import orjson  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402

from benchmarks.foundation import scratch_database  # noqa: E402
from graph.app import create_app  # noqa: E402
from jobs.worker import create_workers, run_workers, shared_context  # noqa: E402
from services.auth import Viewer, hash_password, issue_token  # noqa: E402
from services.models import Role, Subject, Tenant, User  # noqa: E402
from services.platform.db import create_engine, create_session_factory  # noqa: E402
from services.platform.settings import Settings  # noqa: E402
from services.rosters import parse_roster  # noqa: E402

IMPORT = """mutation ImportRoster($file: Upload!, $dryRun: Boolean) {
  importRoster(file: $file, dryRun: $dryRun) { id }
}"""
PROGRESS = """query RosterImport($id: ID!) {
  rosterImport(id: $id) { status totalRows created updated unchanged errors { line } }
}"""


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
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_max=2)
    try:
        async with create_session_factory(engine)() as session, session.begin():
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
            await session.flush()
    finally:
        await engine.dispose()
    viewer = Viewer(user_id=admin.id, tenant_id=tenant.id, role=Role.ADMIN)
    return issue_token(viewer, secret=settings.jwt_secret, ttl_seconds=3600, now=datetime.now(UTC))


async def one_import(
    http: httpx.AsyncClient, token: str, content: bytes, dry_run: bool
) -> tuple[float, dict[str, Any]]:
    """Upload, then poll every 20 ms until the import ends (the workers run meanwhile)."""
    headers = {"authorization": f"Bearer {token}"}
    started = time.perf_counter()
    response = await http.post(
        "/graphql",
        data={
            "operations": orjson.dumps(
                {"query": IMPORT, "variables": {"file": None, "dryRun": dry_run}}
            ).decode(),
            "map": orjson.dumps({"0": ["variables.file"]}).decode(),
        },
        files={"0": ("roster.csv", content, "text/csv")},
        headers={**headers, "apollo-require-preflight": "true"},
    )
    import_id = response.json()["data"]["importRoster"]["id"]
    while True:
        body = await http.post(
            "/graphql", json={"query": PROGRESS, "variables": {"id": import_id}}, headers=headers
        )
        result: dict[str, Any] = body.json()["data"]["rosterImport"]
        if result["status"] in {"SUCCEEDED", "FAILED"}:
            return time.perf_counter() - started, result
        await asyncio.sleep(0.02)


async def measure(settings: Settings, rows: int, classrooms: int) -> bool:
    assert settings.redis_url is not None
    flushing = aioredis.Redis.from_url(settings.redis_url)
    await flushing.flushdb()
    await flushing.aclose()
    token = await school_admin(settings)
    content = roster(rows, classrooms)
    started = time.perf_counter()
    parsed = parse_roster(content)
    parse_seconds = time.perf_counter() - started
    print(f"{rows:,} rows in {classrooms} classrooms, {len(content) / 1e6:.2f} MB")
    print(f"   reading and checking the CSV alone: {parse_seconds:.2f} s")
    ok = len(parsed.rows) == rows
    expected = {
        "first import": (rows, 0, 0),
        "same file again": (0, 0, rows),
        "dry run": (0, 0, rows),
    }
    async with (
        shared_context(settings) as shared,
        LifespanManager(create_app(settings)) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://bench"
        ) as http,
    ):
        workers = asyncio.create_task(run_workers(create_workers(settings, shared, cron_jobs=())))
        for run, counts in expected.items():
            elapsed, result = await one_import(http, token, content, run == "dry run")
            got = (result["created"], result["updated"], result["unchanged"])
            print(
                f"{run:>16}: {elapsed:6.2f} s  {rows / elapsed:8,.0f} rows/s  "
                f"{result['status']} created/updated/unchanged {got}"
            )
            ok &= result["status"] == "SUCCEEDED" and got == counts and not result["errors"]
        workers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await workers
    return ok


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    arguments.add_argument("--rows", type=int, default=5_000)
    arguments.add_argument("--classrooms", type=int, default=40)
    arguments.add_argument("--keep", action="store_true", help="keep the database")
    options = arguments.parse_args()
    with scratch_database(
        "rollcall_bench_rosters", redis_default="redis://127.0.0.1:6379/9", keep=options.keep
    ) as scratch:
        settings = dataclasses.replace(scratch.settings, rate_limits_enabled=False)
        ok = asyncio.run(measure(settings, options.rows, options.classrooms))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
