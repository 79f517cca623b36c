"""Reading a roster CSV: ``classroom,student_name,student_email[,teacher_email]``.

Pure: bytes in, good rows and row errors out; what needs the database (an email that is a
staff account, say) is checked where the rows are applied (``services.roster_imports``). The
file is read with the standard library's csv module (quoting, embedded newlines and commas as
RFC 4180 has them); each line keeps its number for the errors. Bytes that are not UTF-8 are
kept as lone surrogates while reading, so a bad row is reported, not the whole file refused.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from typing import Any

from services.names import CLASSROOM_NAME_LENGTH, PERSON_NAME_LENGTH, clean_email, clean_name
from services.platform.errors import Invalid

REQUIRED_COLUMNS = ("classroom", "student_name", "student_email")
TEACHER_COLUMN = "teacher_email"
MAX_ROWS = 10_000
MAX_FILE_BYTES = 4 * 1024 * 1024
# A field longer than any name or address fits, but far below csv's 128 KiB default.
MAX_FIELD_CHARS = 1024
_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class RosterRow:
    line: int
    classroom: str
    student_name: str
    student_email: str
    teacher_email: str | None


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    column: str | None
    message: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class ParsedRoster:
    rows: list[RosterRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    # False when the header lacks a required column: then no row was read.
    readable: bool = True
    # Data rows read, good and bad (blank lines and rows past MAX_ROWS not counted).
    total_rows: int = 0


def _undecodable(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)


def _header(record: list[str]) -> tuple[dict[str, int], RowError | None]:
    columns = [name.strip().lower() for name in record]
    if columns and columns[0].startswith(_BOM):
        columns[0] = columns[0].removeprefix(_BOM)
    expected = ",".join(REQUIRED_COLUMNS) + f"[,{TEACHER_COLUMN}]"
    if any(_undecodable(name) for name in columns):
        return {}, RowError(1, None, "The header is not UTF-8 text.")
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            return {}, RowError(
                1, name, f"The header has no {name} column; it must read {expected}."
            )
    positions: dict[str, int] = {}
    for index, name in enumerate(columns):
        if name in positions:
            return {}, RowError(1, name, f"The header names {name} twice.")
        positions[name] = index
    return positions, None


def _row(line: int, record: list[str], positions: dict[str, int]) -> RosterRow:
    """The record as a row; Invalid naming the column at fault."""

    def value(column: str) -> str:
        index = positions.get(column)
        if index is None or index >= len(record):
            if column == TEACHER_COLUMN:
                return ""
            raise Invalid(column, f"This row has no {column}.")
        text = record[index]
        if _undecodable(text):
            raise Invalid(column, "This value is not UTF-8 text.")
        if len(text) > MAX_FIELD_CHARS:
            raise Invalid(column, f"This value is longer than {MAX_FIELD_CHARS} characters.")
        return text

    classroom = clean_name(
        value("classroom"), field="classroom", limit=CLASSROOM_NAME_LENGTH, what="The classroom"
    )
    name = clean_name(value("student_name"), field="student_name", limit=PERSON_NAME_LENGTH)
    email = clean_email(value("student_email"), field="student_email")
    teacher_text = value(TEACHER_COLUMN).strip()
    teacher = clean_email(teacher_text, field=TEACHER_COLUMN) if teacher_text else None
    if teacher == email:
        raise Invalid(TEACHER_COLUMN, "A student cannot be their own class's teacher.")
    return RosterRow(line, classroom, name, email, teacher)


def parse_roster(data: bytes) -> ParsedRoster:
    """Every row of the file, good or with its first error; rows past MAX_ROWS are reported
    as one error and not read."""
    parsed = ParsedRoster()
    text = data.decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        header, parsed.readable = None, False
        parsed.errors.append(RowError(1, None, f"The header is not valid CSV: {error}."))
        return parsed
    if header is None:
        parsed.readable = False
        parsed.errors.append(RowError(1, None, "The file is empty: it needs a header row."))
        return parsed
    positions, refused = _header(header)
    if refused is not None:
        parsed.readable = False
        parsed.errors.append(refused)
        return parsed
    first_line_of: dict[str, int] = {}
    line = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            parsed.errors.append(
                RowError(
                    line, None, f"Not valid CSV ({error}); this line and the rest were not read."
                )
            )
            break
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in record):
            continue
        if parsed.total_rows == MAX_ROWS:
            parsed.errors.append(
                RowError(
                    start,
                    None,
                    f"A roster holds at most {MAX_ROWS:,} rows: this row and the rest were not "
                    "read. Split the file.",
                )
            )
            break
        parsed.total_rows += 1
        if len(record) > len(header):
            parsed.errors.append(RowError(start, None, "This row has more fields than the header."))
            continue
        try:
            row = _row(start, record, positions)
        except Invalid as error:
            parsed.errors.append(RowError(start, error.field, error.message))
            continue
        if (earlier := first_line_of.get(row.student_email)) is not None:
            parsed.errors.append(
                RowError(
                    start, "student_email", f"{row.student_email} is already on line {earlier}."
                )
            )
            continue
        first_line_of[row.student_email] = start
        parsed.rows.append(row)
    return parsed
