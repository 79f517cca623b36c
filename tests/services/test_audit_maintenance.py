"""Audit log upkeep against real PostgreSQL and both real stores (local disk, S3).

Other tests write entries of today, so these only touch months far from now (before 2022,
from 2040 on), and drop what they made: the current months and the default partition stay.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import insert, text

from services.audit_maintenance import (
    ARCHIVE_PREFIX,
    ArchiveNotVerified,
    ArchiveReport,
    archive_audit_logs,
    ensure_partitions,
)
from services.models import AuditAction, AuditLog
from services.platform.db import SessionFactory
from services.platform.storage import LocalStore, ObjectStore, S3Store, StorageUnavailable

TENANT = uuid.uuid4()
NEVER = 10**12  # a threshold no test table reaches


def at(year: int, month: int, day: int = 1, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


# When most tests archive: 90 days back is early May 2019.
ARCHIVAL_DAY = at(2019, 8, 1)


def archive(
    session_factory: SessionFactory,
    store: ObjectStore,
    *,
    now: datetime = ARCHIVAL_DAY,
    min_rows: int = 0,
) -> Awaitable[ArchiveReport]:
    """An archival keeping 90 days, of any month however few its rows (unless ``min_rows``)."""
    return archive_audit_logs(
        session_factory=session_factory,
        store=store,
        min_rows=min_rows,
        retention_days=90,
        now=now,
    )


async def forget_far_months(session_factory: SessionFactory) -> None:
    """Drop what these tests made: partitions and default rows before 2022 or from 2040 on."""
    async with session_factory() as session, session.begin():
        names = await session.scalars(
            text(
                "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'audit_logs'::regclass AND c.relname ~ '^audit_logs_[0-9]' "
                "AND NOT substring(c.relname, 12, 4)::int BETWEEN 2022 AND 2039"
            )
        )
        for name in list(names):
            await session.execute(text(f"DROP TABLE {name}"))
        await session.execute(
            text(
                "DELETE FROM audit_logs_default "
                "WHERE timestamp < '2022-01-01+00' OR timestamp >= '2040-01-01+00'"
            )
        )


@pytest.fixture(autouse=True)
async def far_months(session_factory) -> AsyncIterator[None]:
    await forget_far_months(session_factory)
    yield
    await forget_far_months(session_factory)


async def add_entries(session_factory: SessionFactory, stamps: Sequence[datetime]) -> list[int]:
    if not stamps:
        return []
    async with session_factory() as session, session.begin():
        ids = await session.scalars(
            insert(AuditLog).returning(AuditLog.id, sort_by_parameter_order=True),
            [
                {
                    "timestamp": stamp,
                    "tenant_id": TENANT,
                    "user_id": uuid.uuid4(),
                    "action": AuditAction.LOGIN_FAILURE,
                    "resource": "user",
                    "resource_id": str(n),
                    "success": False,
                    "ip_address": "192.0.2.7",
                    "user_agent": "tests/1 (é)",
                    "details": {"n": n, "reason": 'line\nbreak "quoted"'},
                }
                for n, stamp in enumerate(stamps)
            ],
        )
        return list(ids)


async def home_of(session_factory: SessionFactory, ids: Sequence[int]) -> dict[int, str]:
    """The partition each of ``ids`` still sits in (absent: no longer in the table)."""
    async with session_factory() as session:
        found = await session.execute(
            text("SELECT id, tableoid::regclass::text FROM audit_logs WHERE id = ANY(:ids)"),
            {"ids": list(ids)},
        )
        return {entry_id: name for entry_id, name in found}


async def as_archived(session_factory: SessionFactory, ids: Sequence[int]) -> dict[int, dict]:
    async with session_factory() as session, session.begin():
        await session.execute(text("SET LOCAL TimeZone = 'UTC'"))
        found = await session.execute(
            text("SELECT id, row_to_json(a)::text FROM audit_logs AS a WHERE id = ANY(:ids)"),
            {"ids": list(ids)},
        )
        return {entry_id: json.loads(line) for entry_id, line in found}


async def object_bytes(store: ObjectStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.chunks(key)])


async def archived_rows(store: ObjectStore, key: str) -> list[dict]:
    content = gzip.decompress(await object_bytes(store, key))
    return [json.loads(line) for line in content.splitlines()]


async def partition_exists(session_factory: SessionFactory, name: str) -> bool:
    async with session_factory() as session:
        return await session.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name})


async def bounds_of(session_factory: SessionFactory, name: str) -> str:
    async with session_factory() as session:
        return await session.scalar(
            text("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = :name"),
            {"name": name},
        )


async def test_ensure_makes_this_month_and_the_next_ones_once(session_factory):
    # when run twice for March 2041
    first = await ensure_partitions(
        session_factory=session_factory, months_ahead=3, now=at(2041, 3, 10)
    )
    again = await ensure_partitions(
        session_factory=session_factory, months_ahead=3, now=at(2041, 3, 10)
    )
    # then March to June exist, made by the first run only
    assert [made.name for made in first] == [f"audit_logs_2041_0{month}" for month in (3, 4, 5, 6)]
    assert again == []
    assert await bounds_of(session_factory, "audit_logs_2041_06") == (
        "FOR VALUES FROM ('2041-06-01 00:00:00+00') TO ('2041-07-01 00:00:00+00')"
    )
    # and new entries of those months land in their partition
    [entry] = await add_entries(session_factory, [at(2041, 5, 31, 23)])
    assert await home_of(session_factory, [entry]) == {entry: "audit_logs_2041_05"}


async def test_two_workers_ensuring_at_once_make_each_month_once(session_factory):
    runs = await asyncio.gather(
        *(
            ensure_partitions(session_factory=session_factory, months_ahead=2, now=at(2042, 1, 5))
            for _ in range(3)
        )
    )
    names = sorted(made.name for run in runs for made in run)
    assert names == ["audit_logs_2042_01", "audit_logs_2042_02", "audit_logs_2042_03"]


async def test_rows_waiting_in_the_default_partition_move_into_their_month(session_factory):
    # given entries of months that have no partition yet: they sit in the default partition
    april = await add_entries(session_factory, [at(2041, 4, 1), at(2041, 4, 15), at(2041, 4, 30)])
    september = await add_entries(session_factory, [at(2041, 9, 2)])
    assert set((await home_of(session_factory, april)).values()) == {"audit_logs_default"}
    before = await as_archived(session_factory, april + september)
    # when March to June get their partitions
    made = await ensure_partitions(
        session_factory=session_factory, months_ahead=3, now=at(2041, 3, 10)
    )
    # then April's rows moved, once each and unchanged; September's stay in the default one
    assert {m.name: m.moved_rows for m in made}["audit_logs_2041_04"] == 3
    assert await home_of(session_factory, april) == dict.fromkeys(april, "audit_logs_2041_04")
    assert await home_of(session_factory, september) == dict.fromkeys(
        september, "audit_logs_default"
    )
    assert await as_archived(session_factory, april + september) == before
    async with session_factory() as session:
        indexes = await session.scalars(
            text("SELECT indexname FROM pg_indexes WHERE tablename = 'audit_logs_2041_04'")
        )
        assert len(list(indexes)) == 3  # the key and both indexes of the parent


async def test_entries_written_while_a_month_is_made_all_land_in_it(session_factory):
    # given entries of April 2041 waiting in the default partition
    waiting = await add_entries(session_factory, [at(2041, 4, 2)] * 20)

    async def write_more() -> list[int]:
        written = []
        for _ in range(10):
            written += await add_entries(session_factory, [at(2041, 4, 3)] * 5)
        return written

    # when April's partition is made while more April entries are written
    *writers, _ = await asyncio.gather(
        write_more(),
        write_more(),
        ensure_partitions(session_factory=session_factory, months_ahead=0, now=at(2041, 4, 1)),
    )
    # then every entry is in April's partition, once
    ids = waiting + writers[0] + writers[1]
    assert await home_of(session_factory, ids) == dict.fromkeys(ids, "audit_logs_2041_04")
    async with session_factory() as session:
        assert await session.scalar(
            text("SELECT count(*) FROM audit_logs WHERE id = ANY(:ids)"), {"ids": ids}
        ) == len(ids)


async def test_archival_does_nothing_below_the_threshold(session_factory, store):
    await ensure_partitions(session_factory=session_factory, months_ahead=1, now=at(2019, 1, 5))
    entries = await add_entries(session_factory, [at(2019, 1, 3), at(2019, 3, 3)])
    report = await archive(session_factory, store, now=at(2020, 1, 1), min_rows=NEVER)
    assert report.archived == () and "at most" in (report.skipped or "")
    assert len(await home_of(session_factory, entries)) == 2
    assert await store.listing(ARCHIVE_PREFIX) == []


async def test_old_months_are_archived_verified_then_dropped(session_factory, store):
    # given partitions for January to March 2019, entries from January to June (April on in
    # the default partition) and an archival on 15 August 2019: the cutoff is 17 May
    await ensure_partitions(session_factory=session_factory, months_ahead=2, now=at(2019, 1, 5))
    january = await add_entries(session_factory, [at(2019, 1, day, 7) for day in (1, 9, 31)])
    february = await add_entries(session_factory, [at(2019, 2, 28, 23)])
    april = await add_entries(session_factory, [at(2019, 4, 2), at(2019, 4, 30, 23)])
    may = await add_entries(session_factory, [at(2019, 5, 1), at(2019, 5, 3)])
    expected = await as_archived(session_factory, january + february + april)
    # when archival runs
    report = await archive(session_factory, store, now=at(2019, 8, 15), min_rows=3)
    # then each old month is one object holding exactly its rows, the partitions are gone,
    # April's rows left the default partition and May (not wholly past the cutoff) is untouched
    assert [(done.key, done.rows) for done in report.archived] == [
        (f"{ARCHIVE_PREFIX}2019-01", 3),
        (f"{ARCHIVE_PREFIX}2019-02", 1),
        (f"{ARCHIVE_PREFIX}2019-03", 0),
        (f"{ARCHIVE_PREFIX}default-2019-04", 2),
    ]
    assert report.rows == 6 and report.bytes > 0
    for key, ids in (("2019-01", january), ("2019-02", february), ("default-2019-04", april)):
        rows = await archived_rows(store, ARCHIVE_PREFIX + key)
        assert rows == [expected[entry_id] for entry_id in ids]
    assert rows[1]["timestamp"] == "2019-04-30T23:00:00+00:00"
    assert rows[1]["metadata"] == {"n": 1, "reason": 'line\nbreak "quoted"'}
    assert rows[1]["ip_address"] == "192.0.2.7" and rows[1]["tenant_id"] == str(TENANT)
    for month in ("01", "02", "03"):
        assert not await partition_exists(session_factory, f"audit_logs_2019_{month}")
    assert await home_of(session_factory, january + february + april + may) == dict.fromkeys(
        may, "audit_logs_default"
    )
    # and a second run finds nothing more to do
    again = await archive(session_factory, store, now=at(2019, 8, 15))
    assert again.archived == () and again.skipped is None
    assert len(await store.listing(ARCHIVE_PREFIX)) == 4


class Delegating:
    """A store that passes everything on to ``inner``; subclasses change one thing."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


class AlteredReads(Delegating):
    """A store that keeps what it is given but reads back something else."""

    async def chunks(self, key: str) -> AsyncIterator[bytes]:
        yield gzip.compress(b'{"id": 1}\n', mtime=0)


async def test_an_archive_that_does_not_read_back_keeps_its_partition(session_factory, store):
    await ensure_partitions(session_factory=session_factory, months_ahead=0, now=at(2019, 1, 5))
    entries = await add_entries(session_factory, [at(2019, 1, 2), at(2019, 1, 3)])
    with pytest.raises(ArchiveNotVerified):
        await archive(session_factory, AlteredReads(store))  # type: ignore[arg-type]
    assert await home_of(session_factory, entries) == dict.fromkeys(entries, "audit_logs_2019_01")
    # and the next run (as after a crash between upload and drop) rewrites the object it left
    # byte for byte, then drops the partition: no row lost, none twice
    left = await object_bytes(store, f"{ARCHIVE_PREFIX}2019-01")
    report = await archive(session_factory, store)
    assert [done.rows for done in report.archived] == [2]
    assert await object_bytes(store, f"{ARCHIVE_PREFIX}2019-01") == left
    rows = await archived_rows(store, f"{ARCHIVE_PREFIX}2019-01")
    assert [row["id"] for row in rows] == entries
    assert await home_of(session_factory, entries) == {}


class RefusingUploads(Delegating):
    """A store that refuses to store anything."""

    async def put(self, key: str, source: object, *, size: int, content_type: str) -> None:
        raise StorageUnavailable("The object store refused to store the file.")


async def test_a_refused_upload_keeps_every_row(session_factory, store):
    await ensure_partitions(session_factory=session_factory, months_ahead=0, now=at(2019, 1, 5))
    entries = await add_entries(session_factory, [at(2018, 6, 1), at(2019, 1, 2)])
    with pytest.raises(StorageUnavailable):
        await archive(session_factory, RefusingUploads(store))  # type: ignore[arg-type]
    assert sorted((await home_of(session_factory, entries)).values()) == [
        "audit_logs_2019_01",
        "audit_logs_default",
    ]
    assert await store.listing(ARCHIVE_PREFIX) == []


async def test_an_unreachable_store_keeps_every_row(session_factory):
    await ensure_partitions(session_factory=session_factory, months_ahead=0, now=at(2019, 1, 5))
    stray = await add_entries(session_factory, [at(2018, 6, 1)])
    kept = await add_entries(session_factory, [at(2019, 1, 2)])
    dead = S3Store.from_url("s3://key:secret-key@127.0.0.1:9/nowhere?secure=false")
    with pytest.raises(StorageUnavailable):
        await archive(session_factory, dead)
    assert await home_of(session_factory, stray + kept) == {
        stray[0]: "audit_logs_default",
        kept[0]: "audit_logs_2019_01",
    }


async def test_rows_arriving_for_an_archived_month_join_its_object(session_factory, store):
    # given April 2019's default-partition rows archived
    first = await add_entries(session_factory, [at(2019, 4, 2), at(2019, 4, 3)])
    await archive(session_factory, store, now=at(2019, 9, 1))
    # when another row of April arrives and archival runs again
    late = await add_entries(session_factory, [at(2019, 4, 1)])
    report = await archive(session_factory, store, now=at(2019, 9, 1))
    # then the object holds every April row exactly once, and the table none
    assert [done.rows for done in report.archived] == [1]
    rows = await archived_rows(store, f"{ARCHIVE_PREFIX}default-2019-04")
    assert [row["id"] for row in rows] == first + late
    assert await home_of(session_factory, first + late) == {}


class WriterDuringUpload(Delegating):
    """A store during whose first upload an entry of the month being archived arrives."""

    def __init__(self, inner: ObjectStore, session_factory: SessionFactory, late: datetime):
        super().__init__(inner)
        self.session_factory, self.late = session_factory, late
        self.arrived: list[int] = []

    async def put(self, key: str, source: object, *, size: int, content_type: str) -> None:
        if not self.arrived:
            self.arrived = await add_entries(self.session_factory, [self.late])
        await self.inner.put(key, source, size=size, content_type=content_type)  # type: ignore[arg-type]


@pytest.mark.parametrize("partitioned", [True, False])
async def test_a_month_written_to_while_archived_is_kept_then_archived_whole(
    session_factory, store, partitioned
):
    # given January 2019's entries, in their partition or in the default one
    if partitioned:
        await ensure_partitions(session_factory=session_factory, months_ahead=0, now=at(2019, 1, 5))
    entries = await add_entries(session_factory, [at(2019, 1, 2), at(2019, 1, 3)])
    writer = WriterDuringUpload(store, session_factory, at(2019, 1, 4))
    # when an entry of January arrives while it is being archived
    first = await archive(session_factory, writer)  # type: ignore[arg-type]
    # then January is kept whole (its object lacks the late entry) ...
    assert first.archived == ()
    assert set(await home_of(session_factory, entries + writer.arrived)) == set(
        entries + writer.arrived
    )
    # ... and the next run archives all of it, each entry once
    again = await archive(session_factory, store)
    assert [done.rows for done in again.archived] == [3]
    [key] = [done.key for done in again.archived]
    assert [row["id"] for row in await archived_rows(store, key)] == entries + writer.arrived
    assert await home_of(session_factory, entries + writer.arrived) == {}


async def test_entries_written_during_archival_are_unharmed(session_factory, store):
    # given old months to archive (a partition, and rows in the default one), and a current month
    await ensure_partitions(session_factory=session_factory, months_ahead=0, now=at(2041, 4, 1))
    await ensure_partitions(session_factory=session_factory, months_ahead=0, now=at(2019, 1, 5))
    old = await add_entries(session_factory, [at(2019, 1, 2), at(2019, 2, 2)])

    async def write(stamp: datetime) -> list[int]:
        written = []
        for _ in range(10):
            written += await add_entries(session_factory, [stamp] * 5)
        return written

    # when entries of the current month (and strays for the default one) arrive meanwhile
    current, stray, report = await asyncio.gather(
        write(at(2041, 4, 3)),
        write(at(2042, 1, 1)),
        archive(session_factory, store),
    )
    # then the old months are archived and every new entry was written where it belongs
    assert report.rows == 2 and await home_of(session_factory, old) == {}
    assert await home_of(session_factory, current + stray) == {
        **dict.fromkeys(current, "audit_logs_2041_04"),
        **dict.fromkeys(stray, "audit_logs_default"),
    }


async def test_two_archival_runs_never_overlap(session_factory, store):
    await ensure_partitions(session_factory=session_factory, months_ahead=0, now=at(2019, 1, 5))
    entries = await add_entries(session_factory, [at(2019, 1, day) for day in range(1, 29)])
    reports = await asyncio.gather(*(archive(session_factory, store) for _ in range(2)))
    assert sorted(report.rows for report in reports) == [0, 28]
    assert sorted(str(report.skipped) for report in reports) == [
        "None",
        "another archival run is in progress",
    ]
    assert await home_of(session_factory, entries) == {}


MONTHS_2019 = st.datetimes(
    min_value=datetime(2019, 1, 1), max_value=datetime(2019, 12, 31, 23, 59), timezones=st.just(UTC)
)


@hypothesis_settings(max_examples=15)
@given(
    first=st.lists(MONTHS_2019, min_size=1, max_size=25),
    later=st.lists(MONTHS_2019, max_size=10),
    ensured=MONTHS_2019,
    runs=st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=2),
)
async def test_every_row_is_in_the_table_or_in_exactly_one_archive(
    session_factory, first, later, ensured, runs
):
    await forget_far_months(session_factory)
    with tempfile.TemporaryDirectory() as root:
        store = LocalStore(Path(root))
        # given entries, partitions for some months, archival runs and more entries between
        ids = await add_entries(session_factory, first)
        await ensure_partitions(session_factory=session_factory, months_ahead=2, now=ensured)
        for days_after in runs:
            await archive(session_factory, store, now=at(2019, 4, 1) + timedelta(days=days_after))
            ids += await add_entries(session_factory, later)
        # then each entry is either still in the table or in exactly one archive
        in_table = list(await home_of(session_factory, ids))
        archived = [
            row["id"]
            for found in await store.listing(ARCHIVE_PREFIX)
            for row in await archived_rows(store, found.key)
        ]
        assert sorted(in_table + archived) == sorted(ids)
