"""Keyset pages: the rows of a scope that follow a cursor's keyset in a fixed order, and how many
the scope holds. Two statements whatever the page's place, where OFFSET would read every row
before it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class KeysetPage(Generic[Row]):
    rows: list[Row]
    has_next_page: bool
    total: int


async def keyset_page(
    session: AsyncSession,
    model: type[Row],
    scope: Sequence[ColumnElement[bool]],
    *,
    order: tuple[InstrumentedAttribute[Any], InstrumentedAttribute[Any]],
    after: tuple[Any, Any] | None,
    limit: int,
    newest_first: bool = False,
) -> KeysetPage[Row]:
    """Up to ``limit`` rows of ``model`` within ``scope`` ordered on ``order`` (a value, then a
    unique key to break its ties), descending when ``newest_first``, after the keyset
    ``after``."""
    keys = tuple_(*order)
    query = select(model).where(*scope)
    if newest_first:
        query = query.order_by(*(column.desc() for column in order))
        if after is not None:
            query = query.where(keys < tuple_(*after))
    else:
        query = query.order_by(*order)
        if after is not None:
            query = query.where(keys > tuple_(*after))
    rows = list(await session.scalars(query.limit(limit + 1)))
    total = await session.scalar(select(func.count()).select_from(model).where(*scope))
    return KeysetPage(rows=rows[:limit], has_next_page=len(rows) > limit, total=total or 0)
