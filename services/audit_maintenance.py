"""Upkeep of the partitioned audit log: monthly partitions made ahead of time, and old months
archived to the object store as gzip-compressed JSON Lines.

A month is archived only once its whole range ended ``retention_days`` ago, and only when the
table holds more than ``min_rows`` rows. Its rows are dropped (a monthly partition) or deleted
(rows that sat in the default partition) only after the stored object has been read back and
matched what was written. Month bounds are midnight on the 1st in the database's time zone,
as migration 0006 made the first ones.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
import tempfile
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.db import SessionFactory
from services.platform.errors import ServiceError
from services.platform.storage import ObjectStore

logger = logging.getLogger(__name__)

PARENT = "audit_logs"
DEFAULT_PARTITION = "audit_logs_default"
ARCHIVE_PREFIX = "archive/audit-logs/"
ARCHIVE_CONTENT_TYPE = "application/gzip"
MONTHS_AHEAD = 3
# Serialises partition DDL (months made ahead, archived months dropped) between processes.
PARTITIONS_LOCK_KEY = 0x41756469  # "Audi"
# Held by one archival run from start to end, so that two never overlap.
ARCHIVE_LOCK_KEY = 0x41726368  # "Arch"
# How long partition DDL waits for a table lock before failing (the next run tries again).
DDL_LOCK_TIMEOUT = "3s"
BATCH_ROWS = 5000
# zlib level 6: objects within 1 % of level 9's (the default), archival a third faster.
COMPRESS_LEVEL = 6
# Bounds what one compressed chunk may inflate to at once while an archive is read back.
INFLATE_PIECE = 4 * 1024 * 1024


class ArchiveNotVerified(ServiceError):
    """The stored archive does not read back as what was written; no row was removed."""


@dataclass(frozen=True, slots=True)
class CreatedPartition:
    name: str
    moved_rows: int  # rows of its month moved out of the default partition


async def ensure_partitions(
    *,
    session_factory: SessionFactory,
    months_ahead: int = MONTHS_AHEAD,
    now: datetime | None = None,
) -> list[CreatedPartition]:
    """Make the missing monthly partitions of this month and the ``months_ahead`` after it;
    the ones made.

    Rows the default partition holds for such a month move into it in the same transaction
    (PostgreSQL refuses a partition whose rows sit in the default one). Months already past get
    no partition: rows of theirs that sit in the default partition stay there until archived.
    """
    created = []
    async with session_factory() as session, session.begin():
        await _partitions_lock(session)
        missing = await session.execute(
            text(
                "SELECT to_char(month, 'YYYY_MM'), month, month + interval '1 month' "
                "FROM generate_series(date_trunc('month', CAST(:now AS timestamptz)), "
                "date_trunc('month', CAST(:now AS timestamptz)) + make_interval(months => :ahead),"
                " interval '1 month') AS month "
                "WHERE to_regclass(:parent || '_' || to_char(month, 'YYYY_MM')) IS NULL "
                "ORDER BY month"
            ),
            {"now": now or datetime.now(UTC), "ahead": months_ahead, "parent": PARENT},
        )
        months = missing.all()
        if months:
            # Writers of the audit log wait for the commit (readers do not): one routed to the
            # default partition before the attach and inserting after it would fail.
            await session.execute(text(f"LOCK TABLE {PARENT} IN SHARE ROW EXCLUSIVE MODE"))
        for suffix, lower, upper in months:
            name = f"{PARENT}_{suffix}"
            moved = await _attach_month(session, name=name, lower=lower, upper=upper)
            created.append(CreatedPartition(name=name, moved_rows=moved))
    return created


async def _attach_month(
    session: AsyncSession, *, name: str, lower: datetime, upper: datetime
) -> int:
    """Create ``name`` apart, move the default partition's rows of its month into it, attach
    it; how many rows moved. The caller's transaction makes it all or nothing."""
    table = _identifier(name)
    await session.execute(text(f"CREATE TABLE {table} (LIKE {PARENT} INCLUDING DEFAULTS)"))
    moved = await session.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "
            "WHERE timestamp >= :lower AND timestamp < :upper RETURNING *) "
            f"INSERT INTO {table} SELECT * FROM moved"
        ),
        {"lower": lower, "upper": upper},
    )
    await session.execute(
        text(
            f"ALTER TABLE {PARENT} ATTACH PARTITION {table} "
            f"FOR VALUES FROM ('{lower.isoformat()}') TO ('{upper.isoformat()}')"
        )
    )
    return int(moved.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ArchiveSource:
    """Rows archived together into one object: a whole monthly partition, or one month's rows
    of the default partition."""

    table: str
    lower: datetime
    upper: datetime
    key: str

    @property
    def whole_partition(self) -> bool:
        return self.table != DEFAULT_PARTITION


@dataclass(frozen=True, slots=True)
class Archived:
    key: str
    table: str
    rows: int  # rows this run moved out of the table into the object
    bytes: int  # the object's size


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    archived: tuple[Archived, ...] = ()
    skipped: str | None = None  # why the run did nothing, when it did nothing

    @property
    def rows(self) -> int:
        return sum(done.rows for done in self.archived)

    @property
    def bytes(self) -> int:
        return sum(done.bytes for done in self.archived)


@dataclass(frozen=True, slots=True)
class Digest:
    """What an archive holds uncompressed: its line count and SHA-256."""

    lines: int
    sha256: str


async def archive_audit_logs(
    *,
    session_factory: SessionFactory,
    store: ObjectStore,
    min_rows: int,
    retention_days: int,
    now: datetime | None = None,
) -> ArchiveReport:
    """Archive every month that ended ``retention_days`` before ``now``, oldest first, if the
    audit log holds more than ``min_rows`` rows (counted exactly, up to ``min_rows + 1``).

    Each month becomes the object ``archive/audit-logs/YYYY-MM`` (a monthly partition, detached
    and dropped once verified) or ``archive/audit-logs/default-YYYY-MM`` (its rows in the default
    partition, deleted once verified). A run that stopped before removing rows is repeated
    safely: rows already in the month's object are kept there and not written twice.
    """
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    # A transaction lock, held until the run ends and released even if this process dies.
    # The transaction does nothing else: a table lock it took would block the drops.
    async with session_factory() as guard, guard.begin():
        if not await guard.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ARCHIVE_LOCK_KEY}
        ):
            return ArchiveReport(skipped="another archival run is in progress")
        async with session_factory() as session:
            held = await session.scalar(
                text(f"SELECT count(*) FROM (SELECT FROM {PARENT} LIMIT :limit) AS capped"),
                {"limit": min_rows + 1},
            )
            if held <= min_rows:
                return ArchiveReport(skipped=f"{PARENT} holds at most {min_rows} rows")
            sources = await _sources(session, cutoff=cutoff)
        archived = []
        for source in sources:
            done = await _archive(session_factory, store, source)
            if done is not None:
                archived.append(done)
        return ArchiveReport(archived=tuple(archived))


async def _sources(session: AsyncSession, *, cutoff: datetime) -> list[ArchiveSource]:
    """Monthly partitions whose range ended by ``cutoff``, and months of the default partition's
    rows that ended by then, oldest first."""
    partitions = await session.execute(
        text(
            "SELECT c.relname, bound[1]::timestamptz, bound[2]::timestamptz, "
            "to_char(bound[1]::timestamptz, 'YYYY-MM') "
            "FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid, "
            "regexp_match(pg_get_expr(c.relpartbound, c.oid), "
            "'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)') AS bound "
            "WHERE i.inhparent = CAST(:parent AS regclass) AND bound[2]::timestamptz <= :cutoff"
        ),
        {"parent": PARENT, "cutoff": cutoff},
    )
    stray_months = await session.execute(
        text(
            "SELECT month, month + interval '1 month', to_char(month, 'YYYY-MM') FROM ("
            f"SELECT DISTINCT date_trunc('month', timestamp) AS month FROM {DEFAULT_PARTITION} "
            "WHERE timestamp < date_trunc('month', CAST(:cutoff AS timestamptz))) AS months"
        ),
        {"cutoff": cutoff},
    )
    sources = [
        ArchiveSource(table=name, lower=lower, upper=upper, key=f"{ARCHIVE_PREFIX}{month}")
        for name, lower, upper, month in partitions.all()
    ] + [
        ArchiveSource(
            table=DEFAULT_PARTITION,
            lower=lower,
            upper=upper,
            key=f"{ARCHIVE_PREFIX}default-{month}",
        )
        for lower, upper, month in stray_months.all()
    ]
    return sorted(sources, key=lambda source: (source.lower, source.whole_partition))


async def _archive(
    session_factory: SessionFactory, store: ObjectStore, source: ArchiveSource
) -> Archived | None:
    """Write, upload and verify ``source``'s archive, then remove its rows; None when rows
    changed meanwhile (kept, and archived again by the next run)."""
    with tempfile.TemporaryFile() as spool:
        digest, dumped = await _write_archive(session_factory, store, source, spool)
        size = spool.tell()
        spool.seek(0)
        await store.put(source.key, spool, size=size, content_type=ARCHIVE_CONTENT_TYPE)
    stored = await _read_back(store, source.key)
    if stored != digest:
        raise ArchiveNotVerified(
            f"{source.key} reads back as {stored}, not the {digest} written; "
            f"{source.table} is kept."
        )
    if not await _remove_rows(session_factory, source, expected=dumped):
        logger.warning("audit archive: %s changed while archived; kept for the next run", source)
        return None
    logger.info(
        "audit archive: %s rows of %s moved to %s (%s in all)",
        dumped,
        source.table,
        source.key,
        digest.lines,
    )
    return Archived(key=source.key, table=source.table, rows=dumped, bytes=size)


class _ArchiveWriter:
    """gzip-compressed JSON Lines into a file, counting and hashing the uncompressed lines.

    The gzip header carries no name and no time, so the same rows make the same bytes.
    """

    def __init__(self, spool: IO[bytes]) -> None:
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", fileobj=spool, mtime=0, compresslevel=COMPRESS_LEVEL
        )
        self._sha256 = hashlib.sha256()
        self._lines = 0

    def write(self, lines: list[bytes]) -> None:
        data = b"".join(line + b"\n" for line in lines)
        self._gzip.write(data)
        self._sha256.update(data)
        self._lines += len(lines)

    def close(self) -> Digest:
        self._gzip.close()
        return Digest(lines=self._lines, sha256=self._sha256.hexdigest())


async def _write_archive(
    session_factory: SessionFactory, store: ObjectStore, source: ArchiveSource, spool: IO[bytes]
) -> tuple[Digest, int]:
    """The archive of ``source`` into ``spool``; its digest, and how many of ``source``'s rows
    it read from the database.

    An object already under the key (a run that stopped before removing its rows, or rows that
    reached the default partition after their month was archived) is carried over first, and
    rows it already holds are not written again: nothing is lost and nothing doubled.
    """
    writer = _ArchiveWriter(spool)
    carried: set[int] = set()
    if await store.exists(source.key):
        batch: list[bytes] = []
        async for line in _lines(store, source.key):
            carried.add(json.loads(line)["id"])
            batch.append(line)
            if len(batch) == BATCH_ROWS:
                await asyncio.to_thread(writer.write, batch)
                batch = []
        await asyncio.to_thread(writer.write, batch)
    dumped = 0
    async with session_factory() as session, session.begin():
        # Timestamps written in UTC, whatever the server's zone, so that reruns match.
        await session.execute(text("SELECT set_config('TimeZone', 'UTC', true)"))
        rows = await session.stream(
            text(
                f"SELECT entry.id, row_to_json(entry)::text FROM {_identifier(source.table)} "
                "AS entry WHERE timestamp >= :lower AND timestamp < :upper "
                "ORDER BY entry.timestamp, entry.id"
            ),
            {"lower": source.lower, "upper": source.upper},
        )
        async for part in rows.partitions(BATCH_ROWS):
            dumped += len(part)
            fresh = [line.encode() for entry_id, line in part if entry_id not in carried]
            await asyncio.to_thread(writer.write, fresh)
    return await asyncio.to_thread(writer.close), dumped


async def _inflated(store: ObjectStore, key: str) -> AsyncIterator[bytes]:
    """The stored object's bytes, decompressed piece by piece."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        async for chunk in store.chunks(key):
            piece = inflater.decompress(chunk, INFLATE_PIECE)
            yield piece
            while inflater.unconsumed_tail:
                yield inflater.decompress(inflater.unconsumed_tail, INFLATE_PIECE)
        yield inflater.flush()
    except zlib.error as error:
        raise ArchiveNotVerified(f"{key} is not a gzip stream: {error}") from error
    if not inflater.eof or inflater.unused_data:
        raise ArchiveNotVerified(f"{key} is not one whole gzip stream.")


async def _lines(store: ObjectStore, key: str) -> AsyncIterator[bytes]:
    rest = b""
    async for piece in _inflated(store, key):
        *whole, rest = (rest + piece).split(b"\n")
        for line in whole:
            yield line
    if rest:
        raise ArchiveNotVerified(f"{key} ends inside a line.")


async def _read_back(store: ObjectStore, key: str) -> Digest:
    sha256, lines = hashlib.sha256(), 0
    async for piece in _inflated(store, key):
        sha256.update(piece)
        lines += piece.count(b"\n")
    return Digest(lines=lines, sha256=sha256.hexdigest())


class _RowsChanged(Exception):
    """Rolls back a removal: the source no longer holds exactly the rows archived."""


async def _remove_rows(
    session_factory: SessionFactory, source: ArchiveSource, *, expected: int
) -> bool:
    """Drop the archived partition, or delete the archived month from the default one, if it
    still holds exactly the ``expected`` rows that were archived; whether it did."""
    table = _identifier(source.table)
    try:
        async with session_factory() as session, session.begin():
            await _partitions_lock(session)
            if source.whole_partition:
                # Writers of this month wait; counted before the detach, which locks the whole
                # audit log, so that lock lasts only for the detach and the drop.
                await session.execute(text(f"LOCK TABLE {table} IN SHARE MODE"))
                if await session.scalar(text(f"SELECT count(*) FROM {table}")) != expected:
                    raise _RowsChanged
                await session.execute(text(f"ALTER TABLE {PARENT} DETACH PARTITION {table}"))
                await session.execute(text(f"DROP TABLE {table}"))
            else:
                # Writers of the default partition wait, so the delete removes only what the
                # archive holds or fails the count.
                await session.execute(text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
                deleted = await session.execute(
                    text(f"DELETE FROM {table} WHERE timestamp >= :lower AND timestamp < :upper"),
                    {"lower": source.lower, "upper": source.upper},
                )
                if deleted.rowcount != expected:  # type: ignore[attr-defined]
                    raise _RowsChanged
    except _RowsChanged:
        return False
    return True


async def _partitions_lock(session: AsyncSession) -> None:
    """Take the partition DDL lock for the transaction, then bound its waits for table locks:
    while a DDL lock request waits, every later writer of the table queues behind it."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITIONS_LOCK_KEY})
    await session.execute(text(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'"))


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
