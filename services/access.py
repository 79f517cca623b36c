"""Who may see or change what. Services call these checks; resolvers never decide alone."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth import Viewer
from services.models import Role, Student, TeacherAssignment
from services.platform.cache import Cache, Spec
from services.platform.db import SessionFactory
from services.platform.errors import Forbidden

OWN_CLASSROOMS = "own_classrooms"


def teacher_tag(teacher_id: uuid.UUID) -> str:
    """What a teacher teaches: bumped whenever their assignments change."""
    return f"teacher:{teacher_id}"


@dataclass(frozen=True, slots=True)
class Taught:
    classroom_ids: list[uuid.UUID]


class Access:
    """One viewer's rights for one request; the teacher's classrooms are read at most once,
    through ``cache`` when given (tag ``teacher:<id>``: a teacher's every request needs them)."""

    def __init__(
        self, *, viewer: Viewer, session_factory: SessionFactory, cache: Cache | None = None
    ) -> None:
        self.viewer = viewer
        self._session_factory = session_factory
        self._cache = cache
        self._own_classrooms: asyncio.Task[frozenset[uuid.UUID]] | None = None

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.viewer.tenant_id

    async def own_classroom_ids(self) -> frozenset[uuid.UUID]:
        """Classrooms a teacher teaches, or the student's own classroom."""
        if self._own_classrooms is None:
            self._own_classrooms = asyncio.ensure_future(self._load_own_classrooms())
        return await self._own_classrooms

    async def _load_own_classrooms(self) -> frozenset[uuid.UUID]:
        viewer = self.viewer
        if viewer.role is Role.TEACHER:
            query = select(TeacherAssignment.classroom_id).where(
                TeacherAssignment.tenant_id == viewer.tenant_id,
                TeacherAssignment.teacher_id == viewer.user_id,
            )
        elif viewer.role is Role.STUDENT and viewer.student_id is not None:
            query = select(Student.classroom_id).where(
                Student.tenant_id == viewer.tenant_id, Student.id == viewer.student_id
            )
        else:
            return frozenset()

        async def read(session: AsyncSession) -> Taught:
            return Taught(classroom_ids=list((await session.scalars(query)).all()))

        async def compute() -> Taught:
            return await self._session_factory.reading(read)

        if self._cache is None or viewer.role is not Role.TEACHER:
            return frozenset((await compute()).classroom_ids)
        found = await self._cache.fetch(
            Spec(
                tenant_id=viewer.tenant_id,
                kind=OWN_CLASSROOMS,
                key=str(viewer.user_id),
                tags=(teacher_tag(viewer.user_id),),
                value_type=Taught,
                compute=compute,
            )
        )
        return frozenset(found.value.classroom_ids)

    def sees_whole_tenant(self) -> bool:
        return self.viewer.role in {Role.ADMIN, Role.PARTNER}

    def ensure_student_reads_own(self, student_id: uuid.UUID) -> None:
        """The part of ``ensure_can_read_student`` that needs no data: students read only
        themselves. Checked before anything is fetched or computed on their behalf."""
        if self.viewer.role is Role.STUDENT and student_id != self.viewer.student_id:
            raise Forbidden("Students may read only their own data.")

    async def ensure_can_read_student(
        self, *, student_id: uuid.UUID, classroom_id: uuid.UUID
    ) -> None:
        """A student of this tenant: students read only themself; teachers their classrooms'
        students; admins and partners anyone."""
        if self.sees_whole_tenant():
            return
        self.ensure_student_reads_own(student_id)
        if self.viewer.role is Role.STUDENT:
            return
        if classroom_id not in await self.own_classroom_ids():
            raise Forbidden("You do not teach this student's classroom.")

    async def ensure_can_read_classroom(self, classroom_id: uuid.UUID) -> None:
        """Class aggregates and the roster: the class's own students and teachers, and staff."""
        if self.sees_whole_tenant():
            return
        if classroom_id not in await self.own_classroom_ids():
            raise Forbidden("You may not read this classroom.")

    async def ensure_can_read_rankings(self, classroom_id: uuid.UUID) -> None:
        """Rankings list every student's rate, so students see only their own rank."""
        if self.viewer.role is Role.STUDENT:
            raise Forbidden("Students may read only their own ranking.")
        await self.ensure_can_read_classroom(classroom_id)

    async def ensure_can_mark(self, classroom_id: uuid.UUID) -> None:
        """Teachers mark the classrooms they teach; admins mark any."""
        if self.viewer.role is Role.ADMIN:
            return
        if self.viewer.role is not Role.TEACHER:
            raise Forbidden("Only teachers and admins mark attendance.")
        if classroom_id not in await self.own_classroom_ids():
            raise Forbidden("You do not teach this classroom.")

    def ensure_handles_certificates(self) -> None:
        """Medical certificates are health data: partner systems never see them."""
        if self.viewer.role is Role.PARTNER:
            raise Forbidden("Partner systems may not read medical certificates.")

    async def ensure_can_access_certificates(
        self, *, student_id: uuid.UUID, classroom_id: uuid.UUID
    ) -> None:
        """Upload or read a student's certificates: the student, their teachers, admins."""
        self.ensure_handles_certificates()
        await self.ensure_can_read_student(student_id=student_id, classroom_id=classroom_id)

    async def ensure_can_review(self, classroom_id: uuid.UUID) -> None:
        """Admins review any certificate; a teacher those of the classrooms they teach (they
        may mark those absences SICK themselves, so reviewing grants them nothing more)."""
        if self.viewer.role is Role.ADMIN:
            return
        if self.viewer.role is not Role.TEACHER:
            raise Forbidden("Only admins and the student's teachers review certificates.")
        if classroom_id not in await self.own_classroom_ids():
            raise Forbidden("You do not teach this student's classroom.")

    def ensure_admin(self, what: str) -> None:
        if self.viewer.role is not Role.ADMIN:
            raise Forbidden(f"Only admins may {what}.")
