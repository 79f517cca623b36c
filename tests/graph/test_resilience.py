"""Resilience through the HTTP endpoint: the database going away and coming back (a real TCP
proxy in front of PostgreSQL, taken down by the test), and a process short of CPU or memory."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from graphql import GraphQLError
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from graph.errors import format_error
from services.models import AuditAction, AuditLog
from services.platform.db import RetryPolicy, create_engine
from services.platform.resources import Usage
from services.queue import BUILD_EXPORT, Queue
from tests.factories import api_process, error_codes, gql
from tests.proxy import Proxy, target_of, through

ME = "{ me { email } }"
RANKINGS = """
query Rankings($id: ID!, $after: String) {
  classRankings(classroomId: $id, first: 1, after: $after) {
    pageInfo { endCursor } edges { node { studentId rank } }
  }
}"""
REQUEST_EXPORT = """
mutation { requestExport(input: {format: CSV, from: "2026-10-05", to: "2026-10-09"}) {
  id status } }"""


async def no_wait(seconds: float) -> None:
    """The retry policy's sleep in tests: the 1, 2, 4 s backoff is not waited out."""


async def test_requests_fail_fast_while_the_database_is_down_and_recover(settings, factory):
    # given an API process reaching PostgreSQL through a proxy, its breaker probing after 1 s
    school = await factory.school(students=1)
    token = school.token(school.teachers[0])
    proxy = Proxy(*target_of(settings.database_url))
    async with proxy.running() as port:
        proxied = dataclasses.replace(
            settings, database_url=through(settings.database_url, port), db_breaker_reset_seconds=1
        )
        async with api_process(proxied, retry=RetryPolicy(sleep=no_wait)) as http:
            assert "errors" not in await gql(http, ME, token=token)
            # when the database goes away
            proxy.down()
            # then requests fail with SERVICE_UNAVAILABLE until the breaker opens
            for _ in range(5):
                failed = await http.post("/graphql", json={"query": ME}, headers=_auth(token))
                assert failed.status_code == 503
                assert error_codes(failed.json()) == ["SERVICE_UNAVAILABLE"]
                if (await http.get("/health/ready")).json()["database"]["breaker"] == "open":
                    break
            ready = await http.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["status"] == "unavailable"
            assert ready.json()["checks"]["database"] == "down"
            assert ready.json()["database"]["breaker"] == "open"
            # and, once it is open, without trying to connect at all
            tried = proxy.connections
            started = time.monotonic()
            refused = await http.post("/graphql", json={"query": ME}, headers=_auth(token))
            elapsed = time.monotonic() - started
            assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
            assert error_codes(refused.json()) == ["SERVICE_UNAVAILABLE"]
            assert "try again shortly" in refused.json()["errors"][0]["message"]
            assert proxy.connections == tried
            assert elapsed < 1.0  # the connect timeout alone is 5 s
            # when the database is back, then after the reset time one probe closes the breaker
            proxy.up()
            await asyncio.sleep(1.1)
            assert "errors" not in await gql(http, ME, token=token)
            ready = await http.get("/health/ready")
            assert ready.status_code == 200 and ready.json()["database"]["breaker"] == "closed"


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def busy() -> Usage:
    return Usage(cpu_percent=95.0, memory_percent=50.0)


async def test_a_constrained_process_defers_non_critical_work(
    settings, factory, session_factory, redis
):
    # given an API process whose machine is above the CPU threshold, and a class of three
    school = await factory.school(students=3)
    teacher = school.token(school.teachers[0])
    classroom = str(school.classrooms[0].id)
    await factory.refresh()
    async with api_process(settings, usage=busy) as http:
        # when the first page of rankings is read, then it is answered
        first = await gql(http, RANKINGS, {"id": classroom}, token=teacher)
        assert "errors" not in first, first
        cursor = first["data"]["classRankings"]["pageInfo"]["endCursor"]
        # when the next page is asked for, then it is refused until the pressure passes
        second = await http.post(
            "/graphql",
            json={"query": RANKINGS, "variables": {"id": classroom, "after": cursor}},
            headers=_auth(teacher),
        )
        assert second.status_code == 503 and second.headers["retry-after"] == "5"
        assert error_codes(second.json()) == ["SERVICE_UNAVAILABLE"]
        assert "Try again shortly" in second.json()["errors"][0]["message"]
        # when an export is requested, then it is accepted and audited, its build deferred
        requested = await gql(http, REQUEST_EXPORT, token=teacher)
        assert "errors" not in requested, requested
        export = requested["data"]["requestExport"]
        assert export["status"] == "PENDING"
        runs_at = await redis.zscore(Queue.NORMAL.value, f"{BUILD_EXPORT}:{export['id']}")
        assert runs_at is not None and runs_at / 1000 > time.time() + 100
        async with session_factory() as session:
            audited = await session.scalar(
                select(AuditLog.action).where(
                    AuditLog.tenant_id == school.tenant.id, AuditLog.resource_id == export["id"]
                )
            )
        assert audited is AuditAction.DATA_EXPORT
        # and readiness says degraded, and why
        ready = await http.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["reasons"] == ["cpu 95% > 80%"]
        assert ready.json()["checks"]["resources"] == "constrained"
    # when the same is asked of a process with room to spare, then it is answered
    async with api_process(settings) as http:
        second = await gql(http, RANKINGS, {"id": classroom, "after": cursor}, token=teacher)
        assert "errors" not in second and len(second["data"]["classRankings"]["edges"]) == 1


async def test_a_statement_timeout_reaches_the_client_as_service_unavailable(settings):
    # given a statement the server cancelled for its timeout
    engine = create_engine(settings.database_url, pool_max=1, statement_timeout_ms=50)
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as raised:
                await connection.execute(text("SELECT pg_sleep(1)"))
    finally:
        await engine.dispose()
    # when it is formatted for a client in production
    error = format_error(
        GraphQLError("canceling statement", original_error=raised.value),
        request_id="r-1",
        production=True,
    )
    # then it says what happened, with no SQL in it
    assert error.extensions["code"] == "SERVICE_UNAVAILABLE"
    assert error.message == (
        "The database took too long to answer and the query was cancelled; try again shortly."
    )
