"""An export's file: its columns, the rows it holds (in one query, streamed a batch at a time)
and its two formats, CSV (cells that a spreadsheet would run as a formula are quoted) and JSON.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Sequence
from typing import Any, BinaryIO, Protocol

import orjson
from sqlalchemy import ColumnElement, Select, select

from services.models import AttendanceRecord, Classroom, Export, ExportFormat, Student, Subject
from services.platform.db import SessionFactory

STREAM_BATCH = 2000
COLUMNS = (
    "date",
    "period",
    "studentId",
    "studentName",
    "classroom",
    "subject",
    "status",
    "markedAt",
)
CONTENT_TYPES = {ExportFormat.CSV: "text/csv; charset=utf-8", ExportFormat.JSON: "application/json"}
EXTENSIONS = {ExportFormat.CSV: "csv", ExportFormat.JSON: "json"}
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def rows_query(export: Export, scope: Sequence[ColumnElement[bool]]) -> Select[Any]:
    return (
        select(
            AttendanceRecord.date,
            AttendanceRecord.period,
            Student.id,
            Student.name,
            Classroom.name,
            Subject.name,
            AttendanceRecord.status,
            AttendanceRecord.marked_at,
        )
        .join(Student, Student.id == AttendanceRecord.student_id)
        .join(Classroom, Classroom.id == AttendanceRecord.classroom_id)
        .join(Subject, Subject.id == AttendanceRecord.subject_id)
        .where(
            AttendanceRecord.tenant_id == export.tenant_id,
            AttendanceRecord.date.between(export.date_from, export.date_to),
            *scope,
        )
        .order_by(
            AttendanceRecord.date,
            Classroom.name,
            AttendanceRecord.period,
            Student.name,
            Student.id,
        )
    )


async def write_rows(
    session_factory: SessionFactory,
    export: Export,
    scope: Sequence[ColumnElement[bool]],
    spool: BinaryIO,
) -> int:
    """Stream the rows into ``spool`` a batch at a time; how many."""
    out = _writer(export.format, spool)
    count = 0
    async with session_factory() as session:
        result = await session.stream(
            rows_query(export, scope).execution_options(yield_per=STREAM_BATCH)
        )
        async for batch in result.partitions():
            # Formatting a batch is CPU work: off the loop the worker's other jobs share.
            await asyncio.to_thread(lambda rows=batch: out.write([_values(row) for row in rows]))
            count += len(batch)
    await asyncio.to_thread(out.close)
    return count


def _values(row: Sequence[Any]) -> tuple[Any, ...]:
    day, period, student_id, student, classroom, subject, status, marked_at = row
    return (
        day.isoformat(),
        period,
        str(student_id),
        student,
        classroom,
        subject,
        status.value,
        marked_at.isoformat(),
    )


class _Writer(Protocol):
    def write(self, rows: Sequence[tuple[Any, ...]]) -> None: ...

    def close(self) -> None: ...


class _CsvWriter:
    def __init__(self, raw: BinaryIO) -> None:
        self._text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        self._csv = csv.writer(self._text)
        self._csv.writerow(COLUMNS)

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self._csv.writerows(tuple(_cell(value) for value in row) for row in rows)

    def close(self) -> None:
        self._text.flush()
        self._text.detach()  # the spool stays open for the store to read


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _JsonWriter:
    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._separator = b"[\n"

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        for row in rows:
            self._raw.write(self._separator)
            self._raw.write(orjson.dumps(dict(zip(COLUMNS, row, strict=True))))
            self._separator = b",\n"

    def close(self) -> None:
        self._raw.write(b"[]\n" if self._separator == b"[\n" else b"\n]\n")


def _writer(export_format: ExportFormat, raw: BinaryIO) -> _Writer:
    if export_format is ExportFormat.CSV:
        return _CsvWriter(raw)
    return _JsonWriter(raw)
