"""Reading roster CSVs: any bytes give rows and errors, never an exception; every good row
written by a CSV writer reads back as it was; each error names its line."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from services.rosters import MAX_ROWS, parse_roster

HEADER = "classroom,student_name,student_email,teacher_email\n"
names = st.text(
    alphabet=st.characters(categories=("L", "N", "Zs", "P"), exclude_characters="\x85\u2028\u2029"),
    min_size=1,
    max_size=40,
).filter(lambda text: text.strip())
locals_ = st.from_regex(r"[a-z][a-z0-9.]{0,10}[a-z0-9]", fullmatch=True).filter(
    lambda text: ".." not in text
)


@given(st.binary(max_size=2000))
def test_any_bytes_give_rows_and_errors_never_an_exception(data):
    parsed = parse_roster(data)
    lines = data.count(b"\n") + data.count(b"\r") + 1
    for error in parsed.errors:
        assert 1 <= error.line <= lines
    assert len(parsed.rows) <= parsed.total_rows <= MAX_ROWS


@given(st.binary(max_size=500))
def test_rows_after_any_header_line_are_read_or_reported(data):
    parsed = parse_roster(HEADER.encode() + data)
    assert parsed.readable
    reported = {error.line for error in parsed.errors}
    assert all(row.line not in reported for row in parsed.rows)


@given(
    st.lists(
        st.tuples(names, names, locals_, st.none() | locals_), max_size=30, unique_by=lambda r: r[2]
    )
)
def test_rows_written_by_a_csv_writer_read_back_as_they_were(rows):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["classroom", "student_name", "student_email", "teacher_email"])
    for classroom, name, local, teacher in rows:
        teacher_email = f"t.{teacher}@school.test" if teacher else ""
        writer.writerow([classroom, name, f"{local}@school.test", teacher_email])
    parsed = parse_roster(out.getvalue().encode())
    assert parsed.errors == []
    assert [
        (row.classroom, row.student_name, row.student_email, row.teacher_email)
        for row in parsed.rows
    ] == [
        (
            " ".join(classroom.split()),
            " ".join(name.split()),
            f"{local}@school.test",
            f"t.{teacher}@school.test" if teacher else None,
        )
        for classroom, name, local, teacher in rows
    ]


def test_a_byte_order_mark_and_crlf_line_ends_are_read():
    parsed = parse_roster(
        b"\xef\xbb\xbfClassroom,Student_Name,Student_Email\r\nA,B,b@school.test\r\n"
    )
    assert [row.student_email for row in parsed.rows] == ["b@school.test"]


def test_a_quoted_field_over_two_lines_is_reported_at_its_first_line():
    parsed = parse_roster((HEADER + 'A,"Two\nLines",x@school.test,\nA,Bad,bad,\n').encode())
    # A name holds no line break; the next record starts on line 4.
    assert [(error.line, error.column) for error in parsed.errors] == [
        (2, "student_name"),
        (4, "student_email"),
    ]
    assert parsed.rows == []


def test_an_unterminated_quote_stops_the_reading_with_its_line():
    parsed = parse_roster((HEADER + 'A,B,b@school.test,\nA,"open,c@school.test\n').encode())
    assert [row.line for row in parsed.rows] == [2]
    assert [error.line for error in parsed.errors] == [3]
