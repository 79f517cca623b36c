"""Relay cursors: opaque to clients, a keyset inside."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

import orjson

from services.platform.errors import Invalid
from services.platform.keyset import KeysetPage

Node = TypeVar("Node")
Value = TypeVar("Value", int, str)
MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class Page(Generic[Node]):
    """One page of nodes with their cursors, as a Relay connection needs them."""

    items: list[tuple[str, Node]]
    has_next_page: bool
    has_previous_page: bool
    total_count: int


def page_size(first: int | None, default: int) -> int:
    size = default if first is None else first
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise Invalid("first", f"first must be from 1 to {MAX_PAGE_SIZE}.")
    return size


def encode_cursor(kind: str, value: int | str, key: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([kind, value, str(key)])).decode()


def decode_cursor(
    cursor: str | None, kind: str, value_type: type[Value]
) -> tuple[Value, uuid.UUID] | None:
    """The keyset of a cursor made by ``encode_cursor(kind, …)``; VALIDATION_ERROR otherwise."""
    if cursor is None:
        return None
    try:
        found_kind, value, key = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        if found_kind != kind or not isinstance(value, value_type):
            raise ValueError(kind)
        return value, uuid.UUID(key)
    except (ValueError, TypeError, orjson.JSONDecodeError) as error:
        raise Invalid("after", "after is not a cursor from this connection.") from error


def encode_time_cursor(kind: str, at: datetime, key: uuid.UUID) -> str:
    """A cursor of a list ordered newest first on (timestamp, id)."""
    return encode_cursor(kind, at.isoformat(), key)


def relay_page(
    page: KeysetPage[Node], cursor: Callable[[Node], str], after: object | None
) -> Page[Node]:
    """A service's keyset page, read from the keyset ``after``, with each node's cursor."""
    return Page(
        items=[(cursor(node), node) for node in page.rows],
        has_next_page=page.has_next_page,
        has_previous_page=after is not None,
        total_count=page.total,
    )


def decode_time_cursor(cursor: str | None, kind: str) -> tuple[datetime, uuid.UUID] | None:
    """The (timestamp, id) keyset of an ``encode_time_cursor`` cursor; VALIDATION_ERROR else."""
    keyset = decode_cursor(cursor, kind, str)
    if keyset is None:
        return None
    try:
        return datetime.fromisoformat(keyset[0]), keyset[1]
    except ValueError as error:
        raise Invalid("after", "after is not a cursor from this connection.") from error
