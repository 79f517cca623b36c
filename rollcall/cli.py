"""``rollcall serve | worker | dlq | documents | audit | migrate | seed | export-schema``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from types import FrameType

from services.audit_maintenance import MONTHS_AHEAD, archive_audit_logs, ensure_partitions
from services.bulk_seed import Outcome, SchoolSeeded, SeedConflict, seed_bulk
from services.platform.db import SessionFactory, create_engine, create_session_factory, migrate
from services.platform.embedded import (
    CACHE,
    POSTGRES_LOG,
    QUEUE,
    VALKEY_LOG,
    embedded_redis,
    ensure_database,
    start_postgres,
)
from services.platform.logs import configure_logging
from services.platform.settings import Settings, SettingsError
from services.platform.storage import create_store
from services.seed import DEMO_PASSWORD, seed_demo

EMBEDDED_DATABASE = "rollcall"
MAX_SCHOOLS, MAX_CLASSES, MAX_STUDENTS, MAX_DAYS = 1_000, 500, 2_000, 400
SLUG_PREFIX = re.compile(r"[a-z][a-z0-9-]{0,39}")
logger = logging.getLogger("rollcall")


@contextlib.contextmanager
def resolved(settings: Settings, *, redis: bool = True) -> Iterator[Settings]:
    """``settings`` with a database (and Redis) URL, starting embedded servers in development:
    without ``ROLLCALL_REDIS_URL``, two Valkey servers, the queue's (persisted) and the cache's
    (not), unless ``ROLLCALL_CACHE_REDIS_URL`` names the cache's."""
    database_url, redis_url = settings.database_url, settings.redis_url
    cache_redis_url = settings.cache_redis_url
    with contextlib.ExitStack() as stack:
        if database_url is None:
            logger.info(
                "no ROLLCALL_DATABASE_URL: embedded PostgreSQL in %s (its log: %s)",
                settings.data_dir,
                settings.data_dir / POSTGRES_LOG,
            )
            database_url = ensure_database(start_postgres(settings.data_dir), EMBEDDED_DATABASE)
        if redis and redis_url is None:
            logger.info(
                "no ROLLCALL_REDIS_URL: embedded Valkey servers in %s (logs: %s, and each "
                "server's own under its folder)",
                settings.data_dir,
                settings.data_dir / VALKEY_LOG,
            )
            redis_url = stack.enter_context(embedded_redis(settings.data_dir, QUEUE))
            if cache_redis_url is None:
                cache_redis_url = stack.enter_context(embedded_redis(settings.data_dir, CACHE))
        yield dataclasses.replace(
            settings,
            database_url=database_url,
            redis_url=redis_url,
            cache_redis_url=cache_redis_url,
        )


async def _serve(settings: Settings, host: str, port: int, with_worker: bool) -> None:
    import uvicorn

    from graph.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            lifespan="on",
            # Logging is configured already (main); each request is logged by the app's own
            # access log (graph/edge/observability.py), with more in it than uvicorn's.
            log_config=None,
            access_log=False,
            timeout_keep_alive=settings.http_keep_alive_seconds,
            # The app reads X-Forwarded-For itself, from ROLLCALL_TRUSTED_PROXIES only:
            # uvicorn's default believes it from any local peer.
            proxy_headers=False,
        )
    )
    # What is loaded by now (modules, the schema, the models) lives as long as the process:
    # keep it out of the collector's full passes, whose pauses grow with the heap (150-200 ms
    # with 500 live connections, benchmarks/live.py) and land on whatever is being delivered.
    gc.collect()
    gc.freeze()
    if not with_worker:
        await server.serve()
        return
    async with _workers(settings) as workers:
        try:
            await server.serve()
        finally:
            workers.cancel()


@contextlib.asynccontextmanager
async def _workers(settings: Settings) -> AsyncIterator[asyncio.Task[None]]:
    """The job workers running in the background until the block ends."""
    from jobs.worker import shared_context, supervise_workers

    async with shared_context(settings) as shared:
        task = asyncio.ensure_future(supervise_workers(settings, shared))
        try:
            yield task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _work(settings: Settings) -> None:
    """``rollcall worker``: both queues until SIGINT or SIGTERM, then a clean close."""
    async with _workers(settings) as workers:
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, workers.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await workers


@contextlib.asynccontextmanager
async def _database(settings: Settings, *, pool_max: int) -> AsyncIterator[SessionFactory]:
    """Sessions on a small pool of the configured database for one command, closed after."""
    assert settings.database_url is not None
    engine = create_engine(
        settings.database_url, pool_max=pool_max, pooler=settings.database_pooler
    )
    try:
        yield create_session_factory(engine, pooler=settings.database_pooler)
    finally:
        await engine.dispose()


async def _dead_letters(settings: Settings, args: argparse.Namespace) -> None:
    from arq.connections import create_pool

    from services.platform.redis_urls import queue_settings
    from services.queue import dead_letters, retry_dead_letters

    assert settings.database_url is not None and settings.redis_url is not None
    async with _database(settings, pool_max=2) as session_factory:
        if args.action == "list":
            async with session_factory() as session:
                letters = await dead_letters(session, include_retried=args.all)
            for letter in letters:
                retried = (
                    f" retried {letter.retried_at:%Y-%m-%d %H:%M}" if letter.retried_at else ""
                )
                print(
                    f"{letter.id}\t{letter.queue}\t{letter.function}{tuple(letter.args)}\t"
                    f"tries={letter.tries}\t{letter.failed_at:%Y-%m-%d %H:%M:%S}{retried}\t"
                    f"{letter.error}"
                )
            print(f"{len(letters)} dead letter(s)")
        else:
            redis = await create_pool(queue_settings(settings.redis_url))
            try:
                ids = await retry_dead_letters(
                    redis=redis, session_factory=session_factory, letter_id=args.id
                )
            finally:
                await redis.aclose()
            print(f"requeued {len(ids)} dead letter(s): {', '.join(map(str, ids)) or '-'}")


def _schema_problems(document: str) -> list[str]:
    """What stops ``document`` from running against the served schema."""
    from graphql import parse, validate

    from graph.schema import schema

    return [error.message for error in validate(schema._schema, parse(document))]


async def _documents(settings: Settings, args: argparse.Namespace) -> None:
    from pathlib import Path

    from services import trusted_documents

    async with _database(settings, pool_max=2) as session_factory:
        if args.action == "register":
            registrations = []
            try:
                for path in args.files:
                    text = await asyncio.to_thread(Path(path).read_text)
                    name = args.name or Path(path).name
                    registrations += trusted_documents.read_manifest(text, source=path, name=name)
                added = await trusted_documents.register(
                    session_factory=session_factory,
                    registrations=registrations,
                    validate=_schema_problems,
                )
            except (OSError, UnicodeDecodeError, trusted_documents.ManifestError) as error:
                sys.exit(f"nothing registered: {error}")
            print(f"{len(registrations)} document(s) read, {added} newly registered")
        elif args.action == "list":
            for document in await trusted_documents.registered(session_factory=session_factory):
                print(
                    f"{document.sha256}\t{','.join(document.operation_names)}\t"
                    f"{document.manifest}\t{document.registered_at:%Y-%m-%d %H:%M}"
                )
        else:
            removed = await trusted_documents.remove(
                session_factory=session_factory, digests=args.hashes
            )
            print(f"removed {removed} document(s)")


async def _seed(settings: Settings, args: argparse.Namespace) -> None:
    today = datetime.now(UTC).date()
    async with _database(settings, pool_max=2) as session_factory:
        if args.demo:
            created = await seed_demo(
                session_factory=session_factory,
                today=today,
                reset=args.reset,
                store=create_store(settings.storage_url),
            )
            print(
                "demo tenant created"
                if created
                else "demo tenant already present (--reset to recreate)"
            )
        else:
            seeded: list[SchoolSeeded] = []

            def report(school: SchoolSeeded) -> None:
                seeded.append(school)
                _print_seeded(school)

            try:
                await seed_bulk(
                    session_factory=session_factory,
                    today=today,
                    schools=args.schools,
                    classes=args.classes,
                    students=args.students,
                    days=args.days,
                    prefix=args.prefix,
                    reset=args.reset,
                    report=report,
                )
            except SeedConflict as conflict:
                sys.exit(f"rollcall seed: {conflict}")
            created = sum(school.outcome is Outcome.CREATED for school in seeded)
            present = sum(school.outcome is Outcome.PRESENT for school in seeded)
            print(
                f"{created} school(s) created, {present} already present"
                + ("" if created else ": nothing changed")
            )


def _print_seeded(seeded: SchoolSeeded) -> None:
    shape = seeded.shape
    held = f"{shape.classes} classes x {shape.students} students, {seeded.marks:,} marks"
    if seeded.outcome is Outcome.CREATED:
        rate = seeded.marks / seeded.seconds if seeded.seconds else 0.0
        print(
            f"created {seeded.slug}: {held} in {seeded.seconds:.1f} s ({rate:,.0f} rows/s); "
            f"sign in as {seeded.login} / {DEMO_PASSWORD}",
            flush=True,
        )
    elif seeded.outcome is Outcome.DROPPED:
        print(f"dropped {seeded.slug}: {held}", flush=True)
    else:
        print(f"{seeded.slug} already present ({held}): unchanged", flush=True)


async def _audit(settings: Settings, args: argparse.Namespace) -> None:
    async with _database(settings, pool_max=3) as session_factory:
        if args.action == "partitions":
            made = await ensure_partitions(
                session_factory=session_factory, months_ahead=args.months_ahead
            )
            for partition in made:
                print(f"{partition.name}\t{partition.moved_rows} row(s) moved from the default")
            print(f"made {len(made)} partition(s)")
        else:
            report = await archive_audit_logs(
                session_factory=session_factory,
                store=create_store(settings.storage_url),
                min_rows=settings.audit_archive_min_rows
                if args.min_rows is None
                else args.min_rows,
                retention_days=settings.audit_retention_days,
            )
            for done in report.archived:
                print(f"{done.key}\t{done.table}\t{done.rows} row(s)\t{done.bytes} bytes")
            print(
                report.skipped
                or f"archived {report.rows} row(s) in {len(report.archived)} object(s)"
            )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _at_most(limit: int) -> Callable[[str], int]:
    """A whole number from 1 to ``limit`` (a bulk seed past it would take hours, not minutes)."""

    def parse(text: str) -> int:
        value = _positive(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"must be at most {limit:,}")
        return value

    return parse


def _slug_prefix(text: str) -> str:
    if not SLUG_PREFIX.fullmatch(text):
        raise argparse.ArgumentTypeError(
            "lower-case letters, digits and hyphens, starting with a letter, at most 40"
        )
    return text


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="rollcall", description="Rollcall attendance API")
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--with-worker", action="store_true", help="also run the job worker in-process"
    )
    commands.add_parser("worker", help="run the arq worker (all queues, cron included)")
    dlq = commands.add_parser("dlq", help="inspect and requeue jobs that failed every try")
    dlq_actions = dlq.add_subparsers(dest="action", required=True)
    dlq_list = dlq_actions.add_parser("list", help="dead letters not yet retried")
    dlq_list.add_argument("--all", action="store_true", help="include retried ones")
    dlq_retry = dlq_actions.add_parser("retry", help="requeue one dead letter, or all")
    dlq_retry.add_argument("id", nargs="?", type=int, help="the dead letter's id (default: all)")
    documents = commands.add_parser(
        "documents", help="the trusted documents partner tokens (or everyone) may run"
    )
    document_actions = documents.add_subparsers(dest="action", required=True)
    register = document_actions.add_parser(
        "register",
        help="allow the documents of .graphql files or Apollo persisted query manifests "
        "(checked against the schema; all of a file or none)",
    )
    register.add_argument("files", nargs="+", metavar="FILE")
    register.add_argument("--name", help="what to record as their manifest (default: file name)")
    document_actions.add_parser("list", help="every registered document: hash, operations")
    remove = document_actions.add_parser("remove", help="unregister documents by SHA-256")
    remove.add_argument("hashes", nargs="+", metavar="SHA256")
    commands.add_parser("migrate", help="upgrade the database to the newest schema")
    seed = commands.add_parser("seed", help="create demo or bulk data")
    seed.add_argument("--demo", action="store_true", help="the demo tenant of the API contract")
    seed.add_argument(
        "--reset", action="store_true", help="drop the tenants it would make first, and recreate"
    )
    seed.add_argument("--schools", type=_at_most(MAX_SCHOOLS), default=1)
    seed.add_argument("--classes", type=_at_most(MAX_CLASSES), default=3, help="per school")
    seed.add_argument("--students", type=_at_most(MAX_STUDENTS), default=30, help="per class")
    seed.add_argument(
        "--days", type=_at_most(MAX_DAYS), default=30, help="school days of attendance"
    )
    seed.add_argument(
        "--prefix", type=_slug_prefix, default="bulk", help="tenant slugs are PREFIX-1, PREFIX-2, …"
    )
    audit = commands.add_parser("audit", help="the audit log's upkeep, now (cron does it daily)")
    audit_actions = audit.add_subparsers(dest="action", required=True)
    partitions = audit_actions.add_parser("partitions", help="make this month's and next ones'")
    partitions.add_argument("--months-ahead", type=int, default=MONTHS_AHEAD)
    archive = audit_actions.add_parser(
        "archive", help="archive months past AUDIT_RETENTION_DAYS to the store, then drop them"
    )
    archive.add_argument(
        "--min-rows", type=int, help="archive past this many rows (default AUDIT_ARCHIVE_MIN_ROWS)"
    )
    commands.add_parser("export-schema", help="print the GraphQL SDL")
    return root


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends a command as Ctrl-C does, through its cleanups: embedded servers it started
    stop with it. (uvicorn raises the signal again once it has shut down gracefully; with the
    default action the process would die before they ran.)"""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = parser().parse_args(argv)
    if args.command == "export-schema":
        from graph.schema import schema

        sys.stdout.write(schema.as_str() + "\n")
        return
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as error:
        sys.exit(str(error))
    configure_logging(json=settings.json_logs, level=settings.log_level)
    needs_redis = args.command in {"serve", "worker", "dlq"}
    with resolved(settings, redis=needs_redis) as ready:
        assert ready.database_url is not None
        if args.command == "migrate":
            migrate(ready.migration_database_url or ready.database_url)
            print("database is at the newest schema")
        elif args.command == "seed":
            asyncio.run(_seed(ready, args))
        elif args.command == "serve":
            asyncio.run(_serve(ready, args.host, args.port, args.with_worker))
        elif args.command == "worker":
            asyncio.run(_work(ready))
        elif args.command == "dlq":
            asyncio.run(_dead_letters(ready, args))
        elif args.command == "documents":
            asyncio.run(_documents(ready, args))
        elif args.command == "audit":
            asyncio.run(_audit(ready, args))
