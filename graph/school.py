"""The school's directory: tenants, classrooms, subjects, students and teachers."""

from __future__ import annotations

from typing import Annotated

import strawberry

from graph.attributes import from_attributes
from graph.pagination import Connection
from resolvers import attendance as attendance_resolvers
from resolvers.context import Info
from resolvers.loaders import load_existing
from services import models

Role = strawberry.enum(models.Role, description="What an account may do.")


@strawberry.type(description="A school: every record belongs to exactly one.")
class Tenant:
    id: strawberry.ID
    slug: str
    name: str
    timezone: str = strawberry.field(description="IANA zone that decides the school's 'today'.")
    periods_per_day: int
    mahroom_threshold: float = strawberry.field(description="MAHROOM at or below this rate (%).")
    warning_threshold: float = strawberry.field(description="WARNING below this rate (%).")
    tasdiq_threshold: float = strawberry.field(
        description="TASDIQ below this rate (%) while the student has SICK or LEAVE records."
    )

    @classmethod
    def from_model(cls, tenant: models.Tenant) -> Tenant:
        return from_attributes(
            cls,
            tenant,
            mahroom_threshold=float(tenant.mahroom_threshold),
            warning_threshold=float(tenant.warning_threshold),
            tasdiq_threshold=float(tenant.tasdiq_threshold),
        )


@strawberry.type
class Subject:
    id: strawberry.ID
    name: str

    @classmethod
    def from_model(cls, subject: models.Subject) -> Subject:
        return from_attributes(cls, subject)


@strawberry.type(description="A teacher of a classroom.")
class Teacher:
    id: strawberry.ID
    email: str

    @classmethod
    def from_model(cls, user: models.User) -> Teacher:
        return from_attributes(cls, user)


@strawberry.type
class Student:
    id: strawberry.ID
    name: str
    model: strawberry.Private[models.Student]

    @classmethod
    def from_model(cls, student: models.Student) -> Student:
        return from_attributes(cls, student, model=student)

    @strawberry.field
    async def classroom(self, info: Info) -> Annotated[Classroom, strawberry.lazy("graph.school")]:
        loader = info.context.loaders.classrooms
        return Classroom.from_model(
            await load_existing(loader, self.model.classroom_id, "classroom")
        )


@strawberry.type
class Classroom:
    id: strawberry.ID
    name: str
    model: strawberry.Private[models.Classroom]

    @classmethod
    def from_model(cls, classroom: models.Classroom) -> Classroom:
        return from_attributes(cls, classroom, model=classroom)

    @strawberry.field(description="Students by name.")
    async def students(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> Connection[Student]:
        page = await attendance_resolvers.classroom_students(info, self.model, first, after)
        return Connection.from_page(page, Student.from_model)

    @strawberry.field(description="Subjects taught in this classroom, by name.")
    async def subjects(self, info: Info) -> list[Subject]:
        subjects = await info.context.loaders.classroom_subjects.load(self.model.id)
        return [Subject.from_model(subject) for subject in subjects]

    @strawberry.field(description="Teachers of this classroom, by email.")
    async def teachers(self, info: Info) -> list[Teacher]:
        teachers = await info.context.loaders.classroom_teachers.load(self.model.id)
        return [Teacher.from_model(teacher) for teacher in teachers]


async def viewer_classrooms(
    info: Info, first: int | None = 50, after: str | None = None
) -> Connection[Classroom]:
    """A teacher's own classes, an admin's every class, a student's own, by name."""
    page = await attendance_resolvers.classrooms(info, first, after)
    return Connection.from_page(page, Classroom.from_model)


@strawberry.type
class SchoolQuery:
    classrooms: Connection[Classroom] = strawberry.field(
        resolver=viewer_classrooms,
        description="The viewer's classrooms by name: a teacher's own, an admin's every one, a "
        "student's own.",
    )

    @strawberry.field(description="A classroom with its students and teachers; null if unknown.")
    async def classroom(self, info: Info, id: strawberry.ID) -> Classroom | None:
        found = await attendance_resolvers.classroom(info, id)
        return Classroom.from_model(found) if found else None
