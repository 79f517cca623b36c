"""The register's marks, and where each student's attendance alerts stand."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base, owner_fk, tenant_fk


class AttendanceStatus(StrEnum):
    PRESENT = "PRESENT"
    ABSENT = "ABSENT"
    SICK = "SICK"
    LEAVE = "LEAVE"
    NOT_MARKED = "NOT_MARKED"


class AttendanceRecord(Base):
    """One mark: a student's status for one period of one day."""

    __tablename__ = "attendance_records"
    __table_args__ = (
        # One mark per student, day and period; INCLUDE makes a student's summary index-only.
        Index(
            "uq_attendance_student_date_period",
            "tenant_id",
            "student_id",
            "date",
            "period",
            unique=True,
            postgresql_include=["status"],
        ),
        Index("ix_attendance_tenant_classroom_date", "tenant_id", "classroom_id", "date"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    student_id: Mapped[uuid.UUID] = owner_fk("students.id")
    classroom_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classrooms.id"))
    subject_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subjects.id"))
    date: Mapped[date] = mapped_column(Date)
    period: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[AttendanceStatus] = mapped_column(
        Enum(AttendanceStatus, name="attendance_status")
    )
    marked_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    marked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AlertState(Base):
    """A student's standing when last checked, and how many times it became non-OK.

    ``crossings`` numbers the alerts: the n-th crossing's notification has dedupe key
    ``standing:{student}:{n}``, so a check repeated by a retried job notifies nobody twice.
    """

    __tablename__ = "attendance_alert_states"

    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    student_id: Mapped[uuid.UUID] = owner_fk("students.id", primary_key=True)
    standing: Mapped[str] = mapped_column(String(10), server_default="OK")
    crossings: Mapped[int] = mapped_column(server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
