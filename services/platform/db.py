"""Engine, session factory and migrations for PostgreSQL (asyncpg), and what keeps them going
when the database falters: a statement timeout, retries of transient connection errors and a
circuit breaker that fails requests fast while the database is down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from services.platform import recording
from services.platform.circuit import CircuitBreaker
from services.platform.errors import ErrorCode, ServiceError
from services.platform.settings import Pooler
from services.platform.telemetry import DB_BREAKER_REFUSALS, DB_RETRIES

T = TypeVar("T")
logger = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# asyncpg waits 60 s for a connection unless told; a database that does not answer within this
# is down as far as a request is concerned.
CONNECT_TIMEOUT_SECONDS = 5.0
# The backoff: three more tries, 1 s, 2 s and 4 s after each failure.
RETRY_DELAYS_SECONDS = (1.0, 2.0, 4.0)
# Errors meaning "the connection, not the statement, failed": nothing was done, or a
# transaction was rolled back by the server. Statement timeouts (QueryCanceledError) and
# constraint violations are the statement's own and are never retried.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, timed out (TimeoutError is an OSError)
    asyncpg.PostgresConnectionError,  # class 08, ConnectionDoesNotExistError among them
    asyncpg.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.AdminShutdownError,  # 57P01: terminated (pg_terminate_backend, a fast shutdown)
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.TooManyConnectionsError,  # 53300
)


def database_breaker(*, reset_seconds: float) -> CircuitBreaker:
    """The API's breaker on new connections: open after 5 failed connects within a minute,
    then one probe every ``reset_seconds``."""
    return CircuitBreaker(failures=5, window_seconds=60, reset_seconds=reset_seconds)


class DatabaseUnavailable(ServiceError):
    """The database is down: a new connection failed (the failure is its ``__cause__``), or
    the breaker refused to try. Either way: try again shortly."""

    code = ErrorCode.SERVICE_UNAVAILABLE


class BreakerOpen(DatabaseUnavailable):
    """Refused without trying: the database's circuit breaker is open. Never retried."""


UNAVAILABLE_MESSAGE = "The database is unavailable; try again shortly."


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps: SQLAlchemy's ``orig``, the adapter's ``__cause__``."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "orig", None), current.__cause__]


def is_statement_timeout(error: BaseException) -> bool:
    return any(isinstance(cause, asyncpg.QueryCanceledError) for cause in _causes(error))


def is_transient(error: BaseException) -> bool:
    """A connection failure worth retrying (never a refusal of the open breaker)."""
    if isinstance(error, BreakerOpen) or is_statement_timeout(error):
        return False
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return any(isinstance(cause, TRANSIENT_ERRORS) for cause in _causes(error))


def unavailable(error: BaseException) -> DatabaseUnavailable | None:
    """What to tell a client about a statement that failed (a timeout, its connection lost),
    or None when it is no such thing. Failed connects are DatabaseUnavailable already."""
    if not isinstance(error, DBAPIError):
        return None
    if is_statement_timeout(error):
        return DatabaseUnavailable(
            "The database took too long to answer and the query was cancelled; try again shortly."
        )
    if is_transient(error):
        return DatabaseUnavailable(UNAVAILABLE_MESSAGE)
    return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Repeat a unit of work after a transient connection error, waiting ``delays`` between
    tries; ``sleep`` is injectable so that tests do not wait."""

    delays: tuple[float, ...] = RETRY_DELAYS_SECONDS
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        for attempt, delay in enumerate(self.delays, start=1):
            try:
                return await work()
            except Exception as error:
                if not is_transient(error):
                    raise
                DB_RETRIES.inc()
                logger.warning(
                    "database: try %d of %d failed (%s); trying again in %g s",
                    attempt,
                    len(self.delays) + 1,
                    type(error).__name__,
                    delay,
                )
            await self.sleep(delay)
        return await work()


class SessionFactory(async_sessionmaker[AsyncSession]):
    """Sessions on one engine, and the retry policy of work that is safe to repeat."""

    def __init__(self, engine: AsyncEngine, *, retry: RetryPolicy, pooler: Pooler) -> None:
        super().__init__(engine, expire_on_commit=False, autoflush=False)
        self.retry = retry
        # Reads need no transaction: at READ COMMITTED each statement takes its own snapshot
        # inside one too, and without one a session saves the BEGIN and ROLLBACK round trips.
        # Behind PgBouncer in transaction mode they do: a statement is prepared and then run
        # in two exchanges, which outside a transaction may reach two server connections.
        reads = (
            engine
            if pooler is Pooler.PGBOUNCER
            else engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._autocommit = async_sessionmaker(reads, expire_on_commit=False, autoflush=False)

    def __call__(self, **local_kw: Any) -> AsyncSession:
        """A session; what it reads is covered by no cache tag (services/platform/recording.py)."""
        recording.unrecorded_read("the database was read outside the cache")
        return super().__call__(**local_kw)

    async def retrying(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """``work`` in a fresh session, repeated (in another fresh one) after a transient
        connection error. Only for reads and idempotent writes: a commit whose answer was lost
        may have happened, and is then done twice."""

        async def attempt() -> T:
            async with self() as session:
                return await work(session)

        return await self.retry.run(attempt)

    async def reading(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """``work``, which only reads, in a fresh session without a transaction; repeated like
        ``retrying`` after a transient connection error."""

        recording.unrecorded_read("the database was read outside the cache")

        async def attempt() -> T:
            async with self._autocommit() as session:
                return await work(session)

        return await self.retry.run(attempt)


def create_engine(
    database_url: str,
    *,
    pool_max: int = 50,
    statement_timeout_ms: int = 0,
    breaker: CircuitBreaker | None = None,
    pooler: Pooler = Pooler.NONE,
) -> AsyncEngine:
    """A pooled engine of at most ``pool_max`` connections, each kept once opened (until
    recycled after 30 minutes): a connection closed on return costs the next request a connect,
    jit settings and asyncpg's type introspection, which under load cost more than the queries
    (benchmarks/load.py: dashboards p95 1.9 s with a floor of 2 kept, 75 ms with all kept).
    The API opens its ``DB_POOL_MIN`` of them at start (``warm``).

    Connections are not pinged at checkout: the ping is three round trips (BEGIN, a statement,
    ROLLBACK), a third more time per short read. A connection found dead when used (the server
    restarted) makes SQLAlchemy discard every connection opened before it; reads and idempotent
    writes are retried on a fresh one, anything else answers SERVICE_UNAVAILABLE once.

    Each session's statements are cancelled by the server after ``statement_timeout_ms`` (0:
    never). A new connection that fails for a transient reason raises DatabaseUnavailable
    (SERVICE_UNAVAILABLE for clients; retried). With ``breaker``, every new connection goes
    through it: while it is open, checking out fails at once with BreakerOpen.

    Behind PgBouncer in transaction mode (``pooler``) each transaction may run on another
    server connection, so nothing may outlive one: no statement is cached, and each prepared
    one gets a name of its own (asyncpg's numbered names collide across server connections:
    ``prepared statement "__asyncpg_stmt_1__" already exists``). PgBouncer refuses startup
    parameters it does not know, so the statement timeout is then the database's or role's
    own (``ALTER ROLE … SET statement_timeout``), not the session's."""
    server_settings = {"application_name": "rollcall"}
    connect_args: dict[str, Any] = {"timeout": CONNECT_TIMEOUT_SECONDS}
    if pooler is Pooler.PGBOUNCER:
        connect_args.update(
            statement_cache_size=0,
            prepared_statement_cache_size=0,
            prepared_statement_name_func=_statement_name,
        )
    elif statement_timeout_ms:
        server_settings["statement_timeout"] = str(statement_timeout_ms)
    engine = create_async_engine(
        database_url,
        pool_size=pool_max,
        max_overflow=0,
        pool_recycle=1800,
        connect_args={**connect_args, "server_settings": server_settings},
    )
    _guard_connections(engine, breaker)
    return engine


def _statement_name() -> str:
    return f"__rollcall_{uuid.uuid4().hex}__"


async def database_answers(engine: AsyncEngine) -> None:
    """One ``SELECT 1`` on a connection of ``engine``; raises when the database does not answer."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def warm(engine: AsyncEngine, *, connections: int) -> None:
    """Open ``connections`` pooled connections now, so that the first requests find them."""
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(connections):
            await stack.enter_async_context(engine.connect())


def _guard_connections(engine: AsyncEngine, breaker: CircuitBreaker | None) -> None:
    @event.listens_for(engine.sync_engine, "do_connect")
    def connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
        if breaker is not None and not breaker.allow():
            DB_BREAKER_REFUSALS.inc()
            raise BreakerOpen(UNAVAILABLE_MESSAGE)
        try:
            connection = dialect.connect(*cargs, **cparams)
        except asyncio.CancelledError:
            # Given up by its request (a sibling field failed, the client left): no sign of
            # the database's health, or anyone could open the breaker for everyone.
            if breaker is not None:
                breaker.record_abandoned()
            raise
        except BaseException as error:
            if breaker is not None:
                breaker.record_failure()
            logger.warning("database: connecting failed: %r", error)
            if isinstance(error, Exception) and is_transient(error):
                raise DatabaseUnavailable(UNAVAILABLE_MESSAGE) from error
            raise
        if breaker is not None:
            breaker.record_success()
        return connection


def create_session_factory(
    engine: AsyncEngine, *, retry: RetryPolicy | None = None, pooler: Pooler = Pooler.NONE
) -> SessionFactory:
    """Sessions on ``engine``, made with the same ``pooler`` (what reads may do without a
    transaction depends on it)."""
    return SessionFactory(engine, retry=retry or RetryPolicy(), pooler=pooler)


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def migrate(database_url: str) -> None:
    """Upgrade the database to the newest revision (blocking; runs its own event loop)."""
    command.upgrade(alembic_config(database_url), "head")


async def migrate_async(database_url: str) -> None:
    """``migrate`` from inside a running event loop (Alembic's env starts a loop of its own)."""
    await asyncio.to_thread(migrate, database_url)
