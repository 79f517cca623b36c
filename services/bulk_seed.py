"""Bulk schools for benchmarks and drills (``rollcall seed --schools N …``): each its own
tenant of random but reproducible attendance, seeded once and left alone when already there."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import AttendanceRecord, Classroom, Student, Subject, Tenant, User
from services.platform.db import SessionFactory
from services.seed import (
    DEMO_PERIODS,
    attendance_rows,
    copy_attendance,
    create_school,
    random_statuses,
    school_days,
)
from services.statistics import refresh_statistics


@dataclass(frozen=True, slots=True)
class SchoolShape:
    """What a bulk school holds: what its seed was asked for, or what one already has."""

    classes: int
    students: int  # per class
    days: int

    def describe(self) -> str:
        return f"{self.classes} classes x {self.students} students over {self.days} days"


class Outcome(StrEnum):
    """What a bulk seed did with one school."""

    CREATED = "created"
    PRESENT = "present"  # already there with the same shape: left as it is
    DROPPED = "dropped"  # there with another shape, and --reset asked: recreated next


@dataclass(frozen=True, slots=True)
class SchoolSeeded:
    """One bulk school, as the seed left it."""

    slug: str
    outcome: Outcome
    shape: SchoolShape
    marks: int
    seconds: float

    @property
    def login(self) -> str:
        return f"admin@{self.slug}.school"


class SeedConflict(ValueError):
    """A school of the seed's names already holds other data than the arguments ask for."""


async def _school_shape(session: AsyncSession, tenant_id: uuid.UUID) -> tuple[SchoolShape, int]:
    """The shape of a bulk school as it is (students per class: its largest class's count),
    and how many marks it holds."""
    classes = await session.scalar(
        select(func.count()).select_from(Classroom).where(Classroom.tenant_id == tenant_id)
    )
    largest = await session.scalar(
        select(func.count())
        .select_from(Student)
        .where(Student.tenant_id == tenant_id)
        .group_by(Student.classroom_id)
        .order_by(func.count().desc())
        .limit(1)
    )
    days, marks = (
        await session.execute(
            select(func.count(func.distinct(AttendanceRecord.date)), func.count()).where(
                AttendanceRecord.tenant_id == tenant_id
            )
        )
    ).one()
    return SchoolShape(classes=classes or 0, students=largest or 0, days=days), marks


async def seed_bulk(
    *,
    session_factory: SessionFactory,
    today: date,
    schools: int,
    classes: int,
    students: int,
    days: int,
    periods: int = DEMO_PERIODS,
    prefix: str = "bulk",
    random_seed: int = 1,
    reset: bool = False,
    report: Callable[[SchoolSeeded], None] = lambda seeded: None,
) -> list[uuid.UUID]:
    """``schools`` tenants (``{prefix}-1`` …), each with ``classes`` × ``students`` students
    and ``days`` school days of marks; their ids.

    Idempotent: a school already present with the same shape is left as it is (reported
    "present"); one with another shape is a SeedConflict, unless ``reset`` drops it first
    (reported "dropped"). Each school draws from a generator seeded with its own slug, so
    the same arguments give the same data whichever schools a former run already made.
    """
    shape = SchoolShape(classes=classes, students=students, days=days)
    calendar = school_days(today, days)
    tenant_ids: list[uuid.UUID] = []
    changed = False
    for school in range(1, schools + 1):
        slug = f"{prefix}-{school}"
        started = time.perf_counter()
        async with session_factory() as session, session.begin():
            existing = await session.scalar(select(Tenant.id).where(Tenant.slug == slug))
            if existing is not None:
                found, marks = await _school_shape(session, existing)
                if not reset:
                    if found != shape:
                        raise SeedConflict(
                            f"{slug} already holds {found.describe()}, not {shape.describe()}: "
                            "seed with its arguments, or add --reset to drop and recreate it"
                        )
                    tenant_ids.append(existing)
                    report(SchoolSeeded(slug, Outcome.PRESENT, found, marks, 0.0))
                    continue
                await session.execute(delete(Tenant).where(Tenant.id == existing))
                report(SchoolSeeded(slug, Outcome.DROPPED, found, marks, 0.0))
            rng = random.Random(f"{random_seed}:{slug}")
            tenant, teacher, classrooms, subjects = await create_school(
                session,
                slug=slug,
                name=f"School {school}",
                classroom_names=[f"Class {n}" for n in range(1, shape.classes + 1)],
                staff_domain=f"{slug}.school",
                periods_per_day=periods,
            )
            student_rows = [
                {
                    "tenant_id": tenant.id,
                    "classroom_id": room.id,
                    "name": f"{room.name} Student {n:05d}",
                }
                for room in classrooms
                for n in range(1, shape.students + 1)
            ]
            created = (
                await session.execute(
                    insert(Student).returning(Student.id, Student.classroom_id), student_rows
                )
            ).all()

            def rows(
                created: Sequence[Any] = created,
                tenant: Tenant = tenant,
                teacher: User = teacher,
                subjects: Sequence[Subject] = subjects,
                rng: random.Random = rng,
            ) -> Iterator[tuple[Any, ...]]:
                for student_id, classroom_id in created:
                    yield from attendance_rows(
                        tenant=tenant,
                        student=(student_id, classroom_id),
                        statuses=random_statuses(len(calendar) * periods, rng),
                        days=calendar,
                        subjects=subjects,
                        periods=periods,
                        teacher=teacher,
                    )

            await copy_attendance(session, rows())
            tenant_ids.append(tenant.id)
        marks = len(created) * len(calendar) * periods
        report(SchoolSeeded(slug, Outcome.CREATED, shape, marks, time.perf_counter() - started))
        changed = True
    if changed:
        await refresh_statistics(session_factory=session_factory)
    return tenant_ids
