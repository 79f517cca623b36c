"""Engine, session factory and migrations for PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SessionFactory = async_sessionmaker[AsyncSession]


def create_engine(database_url: str, *, pool_min: int = 10, pool_max: int = 50) -> AsyncEngine:
    """A pooled engine: ``pool_min`` connections kept, up to ``pool_max`` under load."""
    return create_async_engine(
        database_url,
        pool_size=pool_min,
        max_overflow=max(pool_max - pool_min, 0),
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "rollcall"}},
    )


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def migrate(database_url: str) -> None:
    """Upgrade the database to the newest revision (blocking; runs its own event loop)."""
    command.upgrade(alembic_config(database_url), "head")


async def migrate_async(database_url: str) -> None:
    """``migrate`` from inside a running event loop (Alembic's env starts a loop of its own)."""
    await asyncio.to_thread(migrate, database_url)
