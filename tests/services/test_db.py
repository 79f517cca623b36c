"""The database's resilience against a real PostgreSQL: retries of transient connection errors,
statement timeouts, the breaker on new connections."""

from __future__ import annotations

import asyncio
import socket

import asyncpg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from jobs.worker import shared_context
from services.directory import rows_by_ids
from services.models import Student
from services.platform.circuit import BreakerState, CircuitBreaker
from services.platform.db import (
    BreakerOpen,
    DatabaseUnavailable,
    RetryPolicy,
    create_engine,
    create_session_factory,
    is_statement_timeout,
    is_transient,
    unavailable,
)


class Sleeps:
    """A RetryPolicy's sleep that only records the delays it was asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


async def terminate(database_url: str, pid: int) -> None:
    """End one backend of this test's own database, from another connection."""
    admin = await asyncpg.connect(_dsn(database_url))
    try:
        ended = await admin.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid = $1",
            pid,
        )
    finally:
        await admin.close()
    assert ended is True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_a_read_survives_its_connection_being_terminated(settings, factory):
    # given a student, and a read whose first try loses its connection mid-way
    school = await factory.school(students=1)
    student = school.students[0]
    engine = create_engine(settings.database_url, pool_max=2)
    sleeps = Sleeps()
    sessions = create_session_factory(engine, retry=RetryPolicy(sleep=sleeps))
    tries: list[int] = []

    async def read(session: AsyncSession) -> list[Student | None]:
        pid = await session.scalar(text("SELECT pg_backend_pid()"))
        tries.append(pid)
        if len(tries) == 1:
            await terminate(settings.database_url, pid)
        return await rows_by_ids(session, Student, school.tenant.id, [student.id])

    try:
        # when it runs through the retry path
        (found,) = await sessions.retrying(read)
    finally:
        await engine.dispose()
    # then the second try, on a new connection, answers after the first backoff step
    assert found is not None and found.id == student.id
    assert len(tries) == 2 and tries[0] != tries[1]
    assert sleeps.delays == [1.0]


async def backend_pid(sessions) -> int:
    async with sessions() as session:
        return await session.scalar(text("SELECT pg_backend_pid()"))


async def test_connections_killed_while_pooled_cost_one_refusal_at_most(settings):
    # given a pool of one connection, killed while it sits idle (as a server restart does)
    engine = create_engine(settings.database_url, pool_max=1)
    sleeps = Sleeps()
    sessions = create_session_factory(engine, retry=RetryPolicy(sleep=sleeps))
    try:
        killed = await backend_pid(sessions)
        await terminate(settings.database_url, killed)
        # when a read runs, it is retried on a new connection
        assert await sessions.reading(lambda s: s.scalar(text("SELECT 1"))) == 1
        assert sleeps.delays == [1.0]
        reconnected = await backend_pid(sessions)
        assert reconnected != killed
        # and a write that is not retried meets a dead connection once: a transient error
        # (SERVICE_UNAVAILABLE), and the next session has a live connection again
        await terminate(settings.database_url, reconnected)
        with pytest.raises(DBAPIError) as lost:
            async with sessions() as session, session.begin():
                await session.execute(text("SELECT 1"))
        assert isinstance(unavailable(lost.value), DatabaseUnavailable)
        assert await backend_pid(sessions) not in {killed, reconnected}
    finally:
        await engine.dispose()


async def test_reads_run_without_a_transaction(session_factory):
    async def xact_ids(session: AsyncSession) -> tuple[int, int]:
        first = await session.scalar(text("SELECT pg_current_xact_id()::text::bigint"))
        second = await session.scalar(text("SELECT pg_current_xact_id()::text::bigint"))
        return first, second

    # each statement of a read is its own transaction: no BEGIN and ROLLBACK around them
    first, second = await session_factory.reading(xact_ids)
    assert first != second
    # while a session for writes keeps its statements in one
    first, second = await session_factory.retrying(xact_ids)
    assert first == second


def counted(metric: str) -> float:
    """What /metrics says of ``metric`` in this process."""
    return REGISTRY.get_sample_value(metric) or 0.0


async def test_transient_errors_are_retried_three_times_with_backoff():
    sleeps, calls = Sleeps(), []

    async def refused() -> None:
        calls.append(1)
        raise ConnectionRefusedError(111, "Connect call failed")

    retries = counted("rollcall_db_retries_total")
    with pytest.raises(ConnectionRefusedError):
        await RetryPolicy(sleep=sleeps).run(refused)
    assert len(calls) == 4 and sleeps.delays == [1.0, 2.0, 4.0]
    assert counted("rollcall_db_retries_total") == retries + 3  # what /metrics counts


async def test_constraint_violations_and_refusals_are_not_retried(session_factory):
    sleeps = Sleeps()
    policy = RetryPolicy(sleep=sleeps)

    async def duplicate() -> None:
        async with session_factory() as session, session.begin():
            await session.execute(text("CREATE TEMPORARY TABLE once (id int PRIMARY KEY)"))
            await session.execute(text("INSERT INTO once VALUES (1), (1)"))

    with pytest.raises(IntegrityError):
        await policy.run(duplicate)

    async def fast_failed() -> None:
        raise BreakerOpen("The database is unavailable; try again shortly.")

    with pytest.raises(BreakerOpen):
        await policy.run(fast_failed)
    assert sleeps.delays == []


async def test_a_statement_over_the_timeout_is_cancelled_clearly(settings):
    # given an engine whose statements may run 100 ms
    engine = create_engine(settings.database_url, pool_max=1, statement_timeout_ms=100)
    sleeps = Sleeps()
    sessions = create_session_factory(engine, retry=RetryPolicy(sleep=sleeps))
    try:
        # when a statement sleeps for 2 s
        with pytest.raises(DBAPIError) as raised:
            await sessions.retrying(lambda session: session.execute(text("SELECT pg_sleep(2)")))
        # then the server cancels it, and it is not retried
        assert "canceling statement due to statement timeout" in str(raised.value)
        assert is_statement_timeout(raised.value) and not is_transient(raised.value)
        assert sleeps.delays == []
        told = unavailable(raised.value)
        assert told is not None and "took too long" in told.message
        # and the connection is still good for the next statement
        assert await sessions.retrying(lambda session: session.scalar(text("SELECT 1"))) == 1
    finally:
        await engine.dispose()


async def test_jobs_get_the_longer_statement_timeout(settings):
    api = create_engine(
        settings.database_url,
        pool_max=1,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    try:
        async with api.connect() as connection:
            assert await connection.scalar(text("SHOW statement_timeout")) == "5s"
    finally:
        await api.dispose()
    async with shared_context(settings) as ctx, ctx["session_factory"]() as session:
        assert await session.scalar(text("SHOW statement_timeout")) == "30min"


async def test_a_failed_connect_is_a_retried_database_unavailable():
    engine = create_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none", pool_max=1
    )
    sleeps = Sleeps()
    sessions = create_session_factory(engine, retry=RetryPolicy(sleep=sleeps))
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            await sessions.retrying(lambda session: session.scalar(text("SELECT 1")))
    finally:
        await engine.dispose()
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)
    assert raised.value.message == "The database is unavailable; try again shortly."
    assert sleeps.delays == [1.0, 2.0, 4.0]


async def test_the_breaker_refuses_new_connections_at_once_while_open():
    # given an engine on a port nobody listens on, behind a breaker
    breaker = CircuitBreaker(failures=2, window_seconds=60, reset_seconds=60)
    engine = create_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none",
        pool_max=1,
        breaker=breaker,
    )
    sleeps = Sleeps()
    sessions = create_session_factory(engine, retry=RetryPolicy(sleep=sleeps))
    try:
        # when a read fails to connect twice
        with pytest.raises(BreakerOpen):
            await sessions.retrying(lambda session: session.scalar(text("SELECT 1")))
        # then the breaker opened on the second failure and the third try was refused
        assert breaker.state is BreakerState.OPEN and sleeps.delays == [1.0, 2.0]
        started = asyncio.get_running_loop().time()
        refusals = counted("rollcall_db_breaker_refusals_total")
        with pytest.raises(BreakerOpen):
            await sessions.retrying(lambda session: session.scalar(text("SELECT 1")))
        assert asyncio.get_running_loop().time() - started < 0.5
        assert counted("rollcall_db_breaker_refusals_total") == refusals + 1
    finally:
        await engine.dispose()


async def test_a_cancelled_probe_gives_its_turn_to_the_next_caller(settings):
    # given a breaker that is half open, and a probe whose connect is cancelled
    clock = [0.0]
    breaker = CircuitBreaker(failures=1, window_seconds=60, reset_seconds=1, clock=lambda: clock[0])
    breaker.record_failure()
    clock[0] += 1
    engine = create_engine(settings.database_url, pool_max=1, breaker=breaker)
    try:
        probe = asyncio.ensure_future(engine.connect().start())
        await asyncio.sleep(0)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        # then the next caller probes at once, and its success closes the breaker
        assert breaker.state is BreakerState.HALF_OPEN and not breaker.probing
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
        assert breaker.state is BreakerState.CLOSED
    finally:
        await engine.dispose()


async def test_cancelled_connects_do_not_open_the_breaker():
    """Requests give up on connects for their own reasons (a sibling field's error cancels the
    others): however many, the breaker stays closed for everyone else."""
    listener = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]  # accepts, never answers: a connect hangs
    breaker = CircuitBreaker(failures=2, window_seconds=60, reset_seconds=60)
    engine = create_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{port}/none", pool_max=10, breaker=breaker
    )
    try:
        for _ in range(5):
            connecting = asyncio.ensure_future(engine.connect().start())
            await asyncio.sleep(0.05)
            connecting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await connecting
        assert breaker.state is BreakerState.CLOSED
    finally:
        await engine.dispose()
        listener.close()
