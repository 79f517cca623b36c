"""The school: tenants, accounts, classes, subjects, who teaches what, students."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Numeric,
    SmallInteger,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.models.base import Base, owner_fk, tenant_fk, uuid_pk


class Role(StrEnum):
    STUDENT = "STUDENT"
    TEACHER = "TEACHER"
    ADMIN = "ADMIN"
    PARTNER = "PARTNER"


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = uuid_pk()
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    periods_per_day: Mapped[int] = mapped_column(SmallInteger, server_default="8")
    mahroom_threshold: Mapped[Decimal] = mapped_column(Numeric(5, 2), server_default="75")
    warning_threshold: Mapped[Decimal] = mapped_column(Numeric(5, 2), server_default="80")
    tasdiq_threshold: Mapped[Decimal] = mapped_column(Numeric(5, 2), server_default="85")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),
        Index("ix_users_tenant_role_active", "tenant_id", "role", postgresql_where=text("active")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    email: Mapped[str] = mapped_column(String(254))
    # None until the account's owner sets one (services.password_resets): created and imported
    # accounts have none, and no password logs in to them.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(Enum(Role, name="user_role"))
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Tokens issued before this are refused (services.credentials).
    credentials_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Classroom(Base):
    __tablename__ = "classrooms"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_classrooms_tenant_name"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    name: Mapped[str] = mapped_column(String(100))


class Subject(Base):
    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_subjects_tenant_name"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    name: Mapped[str] = mapped_column(String(100))


class ClassroomSubject(Base):
    """The subjects taught in a classroom."""

    __tablename__ = "classroom_subjects"

    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    classroom_id: Mapped[uuid.UUID] = owner_fk("classrooms.id", primary_key=True)
    subject_id: Mapped[uuid.UUID] = owner_fk("subjects.id", primary_key=True)


class TeacherAssignment(Base):
    """A teacher (a user with role TEACHER) teaches a classroom."""

    __tablename__ = "teacher_assignments"
    __table_args__ = (Index("ix_teacher_assignments_classroom", "tenant_id", "classroom_id"),)

    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    teacher_id: Mapped[uuid.UUID] = owner_fk("users.id", primary_key=True)
    classroom_id: Mapped[uuid.UUID] = owner_fk("classrooms.id", primary_key=True)


class Student(Base):
    __tablename__ = "students"
    __table_args__ = (
        Index("ix_students_tenant_classroom_name", "tenant_id", "classroom_id", "name"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = tenant_fk()
    classroom_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classrooms.id"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), unique=True
    )
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
