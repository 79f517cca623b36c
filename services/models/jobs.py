"""Jobs that failed for good (dead letters) and jobs waiting for Redis (the outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base


class DeadLetter(Base):
    """A job that failed every try: its whole payload and last error, until retried by hand.

    Kept in PostgreSQL rather than Redis so that memory pressure can never evict it.
    """

    __tablename__ = "dead_letter_jobs"
    __table_args__ = (Index("ix_dead_letter_jobs_queue_failed", "queue", "failed_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(100))
    job_id: Mapped[str] = mapped_column(String(200))
    function: Mapped[str] = mapped_column(String(100))
    args: Mapped[list[Any]] = mapped_column(JSONB)
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    tries: Mapped[int]
    error: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    retried_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxJob(Base):
    """A job that could not be enqueued (Redis down); drained into its queue when Redis returns."""

    __tablename__ = "job_outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(100))
    job_id: Mapped[str | None] = mapped_column(String(200))
    function: Mapped[str] = mapped_column(String(100))
    args: Mapped[list[Any]] = mapped_column(JSONB)
    defer_seconds: Mapped[float] = mapped_column(server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
