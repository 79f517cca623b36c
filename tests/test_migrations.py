"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.models import Base

# audit_logs is partitioned: its monthly and default partitions are tables the models do not
# (and should not) name.
PARTITION_PREFIX = "audit_logs_"


def _modelled(item: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
    table = name if kind == "table" else getattr(getattr(item, "table", None), "name", "")
    return not (reflected and (table or "").startswith(PARTITION_PREFIX))


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"include_object": _modelled})
    return compare_metadata(context, Base.metadata)


async def test_the_migrated_database_matches_the_models(database_url: str):
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()
