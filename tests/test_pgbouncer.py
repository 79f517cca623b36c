"""Rollcall behind PgBouncer 1.18 in transaction mode (``ROLLCALL_DATABASE_POOLER=pgbouncer``):
the demo seed, the API under 50 concurrent requests and the worker's jobs, all through it, with
fewer server connections than clients; migrations go to PostgreSQL directly."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from rollcall.processes import running_server, running_worker
from tests.factories import error_codes, gql, process_env, run_rollcall
from tests.servers import pgbouncer, pgbouncer_binary

pytestmark = pytest.mark.skipif(
    pgbouncer_binary() is None,
    reason="pgbouncer is not installed (Debian's package pgbouncer; .ci/run installs it)",
)
LOGIN = """mutation L($e: String!) { login(tenant: "demo", email: $e, password: "demo-password")
  { token user { student { id classroom { id } } } } }"""
DASHBOARD = "{ studentDashboard { studentId attendanceRate standing } }"
CLASS = """query C($id: ID!) { classStatistics(classroomId: $id) { totalStudents }
  classRankings(classroomId: $id, first: 10) { totalCount } }"""
MARK = """mutation M($input: MarkAttendanceInput!) { markAttendance(input: $input) { records { id } } }"""
SUBJECTS = """query S($id: ID!) { classroom(id: $id) { subjects { id } students(first: 40) {
  edges { node { id } } } } }"""
EXPORT = """mutation E { requestExport(input: {format: CSV, from: "2026-01-01", to: "2026-12-31"})
  { id } }"""
STATUS = "query X($id: ID!) { export(id: $id) { status rowCount error } }"


@pytest.fixture
async def direct_url(postgres_server_url):
    """A new database of the test's own, reached directly (for migrations and the check)."""
    name = f"rollcall_pgbouncer_{uuid.uuid4().hex[:8]}"
    admin = "postgresql://" + postgres_server_url.split("://", 1)[1]
    connection = await asyncpg.connect(admin)
    await connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(postgres_server_url)._replace(path=f"/{name}").geturl()
    finally:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()


async def test_seed_api_and_worker_run_through_pgbouncer(settings, direct_url, tmp_path):
    with pgbouncer(tmp_path, direct_url, pool_size=4) as bounced:
        env = process_env(
            settings,
            ROLLCALL_DATABASE_URL=bounced,
            ROLLCALL_DATABASE_POOLER="pgbouncer",
            ROLLCALL_MIGRATION_DATABASE_URL=direct_url,
            ROLLCALL_DB_POOL_MIN="4",
            ROLLCALL_DB_POOL_MAX="20",
            # The suite's own load must not make the worker defer the export being waited for.
            ROLLCALL_DEGRADE_CPU_PERCENT="100",
            ROLLCALL_DEGRADE_MEMORY_PERCENT="100",
        )
        for command in (("migrate",), ("seed", "--demo")):
            done = run_rollcall(*command, env=env)
            assert done.returncode == 0, done.stderr[-3000:]
        async with (
            running_server(env) as server,
            running_worker(env) as worker,
            httpx.AsyncClient(base_url=server.base_url, timeout=60) as http,
        ):
            teacher = (await gql(http, LOGIN, {"e": "teacher@demo.school"}))["data"]["login"]
            admin = (await gql(http, LOGIN, {"e": "admin@demo.school"}))["data"]["login"]
            students = [
                (await gql(http, LOGIN, {"e": f"student{n}@demo.school"}))["data"]["login"]
                for n in range(1, 6)
            ]
            classroom = students[0]["user"]["student"]["classroom"]["id"]
            found = await gql(http, SUBJECTS, {"id": classroom}, token=teacher["token"])
            subject = found["data"]["classroom"]["subjects"][0]["id"]
            roster = [
                edge["node"]["id"] for edge in found["data"]["classroom"]["students"]["edges"]
            ]

            def mark(period: int) -> dict[str, object]:
                return {
                    "input": {
                        "classroomId": classroom,
                        "subjectId": subject,
                        "date": datetime.now(UTC).date().isoformat(),
                        "period": period,
                        "marks": [{"studentId": s, "status": "ABSENT"} for s in roster[:5]],
                    }
                }

            requests = (
                [gql(http, DASHBOARD, token=s["token"]) for s in students for _ in range(4)]
                + [gql(http, CLASS, {"id": classroom}, token=teacher["token"]) for _ in range(20)]
                + [gql(http, MARK, mark(1 + n % 6), token=teacher["token"]) for n in range(10)]
            )
            answers = await asyncio.gather(*requests)
            assert len(answers) == 50
            assert [error_codes(answer) for answer in answers] == [[]] * 50, answers
            # a job through PgBouncer: an export streams its rows in one transaction
            export = (await gql(http, EXPORT, token=admin["token"]))["data"]["requestExport"]
            for _ in range(120):
                status = await gql(http, STATUS, {"id": export["id"]}, token=admin["token"])
                if status["data"]["export"]["status"] in {"READY", "FAILED"}:
                    break
                await asyncio.sleep(0.5)
            assert status["data"]["export"]["status"] == "READY", worker.log_tail()
            assert status["data"]["export"]["rowCount"] > 0
