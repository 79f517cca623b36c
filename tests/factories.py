"""Test data: a fresh tenant per test, so tests never see each other's rows."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from arq.worker import Worker
from asgi_lifespan import LifespanManager
from sqlalchemy import ColumnElement, event, func, insert, select
from sqlalchemy.engine import Engine

from graph.app import create_app
from jobs.worker import create_workers, run_workers, shared_context
from rollcall.processes import ROOT, child_env, rollcall_command
from services.auth import Viewer, hash_password, issue_token
from services.cached_reads import create_cache
from services.models import (
    AttendanceRecord,
    AttendanceStatus,
    Classroom,
    ClassroomSubject,
    Role,
    Student,
    Subject,
    TeacherAssignment,
    Tenant,
    User,
)
from services.platform.db import RetryPolicy, SessionFactory
from services.platform.resources import Usage
from services.platform.settings import Settings
from services.statistics_refresh import refresh_statistics
from services.trusted_documents import read_manifest, register

PASSWORD = "correct horse battery staple"
PASSWORD_HASH = hash_password(PASSWORD)


@dataclass
class School:
    tenant: Tenant
    admin: User
    teachers: list[User]
    classrooms: list[Classroom]
    subjects: list[Subject]
    students: list[Student]
    accounts: dict[uuid.UUID, User] = field(default_factory=dict)
    tokens: dict[uuid.UUID, str] = field(default_factory=dict)

    def students_of(self, classroom: Classroom) -> list[Student]:
        return [s for s in self.students if s.classroom_id == classroom.id]

    def student_token(self, student: Student) -> str:
        return self.tokens[student.id]

    def token(self, user: User) -> str:
        return self.tokens[user.id]

    def absence_today(self, student: Student, period: int = 1) -> dict[str, Any]:
        """markAttendance's variables: ``student`` ABSENT today, in the first classroom and
        subject."""
        return {
            "input": {
                "classroomId": str(self.classrooms[0].id),
                "date": datetime.now(UTC).date().isoformat(),
                "period": period,
                "subjectId": str(self.subjects[0].id),
                "marks": [{"studentId": str(student.id), "status": "ABSENT"}],
            }
        }


class Factory:
    def __init__(self, *, session_factory: SessionFactory, settings: Settings) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.secret = settings.jwt_secret

    def issue(self, user: User, student_id: uuid.UUID | None = None, ttl: int = 3600) -> str:
        viewer = Viewer(
            user_id=user.id, tenant_id=user.tenant_id, role=user.role, student_id=student_id
        )
        return issue_token(viewer, secret=self.secret, ttl_seconds=ttl, now=datetime.now(UTC))

    async def school(
        self,
        *,
        classrooms: int = 1,
        students: int = 3,
        teachers: int = 1,
        periods_per_day: int = 6,
        subjects: int = 2,
        assign_teachers: bool = True,
    ) -> School:
        """A tenant; teacher ``i`` teaches classroom ``i`` (the last teaches the rest)."""
        slug = f"t-{uuid.uuid4().hex[:12]}"
        async with self.session_factory() as session, session.begin():
            tenant = Tenant(slug=slug, name=f"School {slug}", periods_per_day=periods_per_day)
            session.add(tenant)
            await session.flush()
            admin = self._user(tenant, "admin@school.test", Role.ADMIN)
            teacher_users = [
                self._user(tenant, f"teacher{n}@school.test", Role.TEACHER) for n in range(teachers)
            ]
            rooms = [Classroom(tenant_id=tenant.id, name=f"Class {n}") for n in range(classrooms)]
            taught = [Subject(tenant_id=tenant.id, name=f"Subject {n}") for n in range(subjects)]
            session.add_all([admin, *teacher_users, *rooms, *taught])
            await session.flush()
            session.add_all(
                ClassroomSubject(tenant_id=tenant.id, classroom_id=room.id, subject_id=subject.id)
                for room in rooms
                for subject in taught
            )
            if assign_teachers and teacher_users:
                session.add_all(
                    TeacherAssignment(
                        tenant_id=tenant.id,
                        teacher_id=teacher_users[min(index, len(teacher_users) - 1)].id,
                        classroom_id=room.id,
                    )
                    for index, room in enumerate(rooms)
                )
            accounts: dict[uuid.UUID, User] = {}
            roster: list[Student] = []
            for room in rooms:
                for n in range(students):
                    account = self._user(
                        tenant, f"{room.name.replace(' ', '')}-{n}@school.test", Role.STUDENT
                    )
                    session.add(account)
                    await session.flush()
                    student = Student(
                        tenant_id=tenant.id,
                        classroom_id=room.id,
                        user_id=account.id,
                        name=f"{room.name} Student {n:03d}",
                    )
                    session.add(student)
                    await session.flush()
                    accounts[student.id] = account
                    roster.append(student)
        school = School(
            tenant=tenant,
            admin=admin,
            teachers=teacher_users,
            classrooms=rooms,
            subjects=taught,
            students=roster,
            accounts=accounts,
        )
        for user in [admin, *teacher_users]:
            school.tokens[user.id] = self.issue(user)
        for student_id, account in accounts.items():
            school.tokens[student_id] = self.issue(account, student_id)
        return school

    async def partner(self, school: School) -> str:
        """A partner system's account in ``school``'s tenant; its token."""
        async with self.session_factory() as session, session.begin():
            partner = self._user(
                school.tenant, f"partner-{uuid.uuid4().hex[:8]}@school.test", Role.PARTNER
            )
            session.add(partner)
        return self.issue(partner)

    async def trust(self, *documents: str) -> None:
        """Register ``documents`` as trusted (deployment-wide: give each test its own)."""
        await register(
            session_factory=self.session_factory,
            registrations=[
                registration
                for document in documents
                for registration in read_manifest(document, source="test", name="tests")
            ],
            validate=lambda document: [],
        )

    @staticmethod
    def _user(tenant: Tenant, email: str, role: Role) -> User:
        return User(
            tenant_id=tenant.id, email=email.lower(), password_hash=PASSWORD_HASH, role=role
        )

    async def records(
        self,
        school: School,
        student: Student,
        marks: Sequence[tuple[date, int, AttendanceStatus]],
    ) -> None:
        """Insert marks directly (distinct date/period pairs), bypassing the API."""
        if not marks:
            return
        async with self.session_factory() as session, session.begin():
            await session.execute(
                insert(AttendanceRecord),
                [
                    {
                        "tenant_id": school.tenant.id,
                        "student_id": student.id,
                        "classroom_id": student.classroom_id,
                        "subject_id": school.subjects[0].id,
                        "date": day,
                        "period": period,
                        "status": status,
                        "marked_by": school.admin.id,
                    }
                    for day, period, status in marks
                ],
            )

    async def student_with(
        self, marks: Sequence[tuple[date, int, AttendanceStatus]]
    ) -> tuple[School, Student]:
        """A school of one student (``school``'s other defaults); the student, with ``marks``."""
        school = await self.school(students=1)
        student = school.students[0]
        await self.records(school, student, marks)
        return school, student

    async def count(self, model: type, *conditions: ColumnElement[bool]) -> int:
        """How many rows of ``model`` meet all of ``conditions``."""
        async with self.session_factory() as session:
            found = await session.scalar(select(func.count()).select_from(model).where(*conditions))
        return int(found)

    async def refresh(self) -> None:
        """What the refresh job does: new snapshots, then the cached aggregates renewed."""
        cache = create_cache(self.settings, session_factory=self.session_factory)
        try:
            await refresh_statistics(session_factory=self.session_factory, cache=cache)
        finally:
            await cache.redis.aclose()


def daily(
    statuses: Sequence[AttendanceStatus], *, start: date
) -> list[tuple[date, int, AttendanceStatus]]:
    """One first-period mark a day from ``start``, with each of ``statuses`` in turn."""
    return [(start + timedelta(days=n), 1, status) for n, status in enumerate(statuses)]


def calm() -> Usage:
    """A machine with CPU and memory to spare, so that tests never see it constrained by
    whatever else the machine runs."""
    return Usage(cpu_percent=0.0, memory_percent=0.0)


def process_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """The environment of a ``rollcall`` child process on the tests' servers: this process's
    environment without its ROLLCALL_ settings, then the tests' database, Redis, secret and
    storage, rate limits off and a small pool; ``overrides`` last."""
    assert settings.database_url is not None and settings.redis_url is not None
    defaults = {
        "ROLLCALL_DATABASE_URL": settings.database_url,
        "ROLLCALL_REDIS_URL": settings.redis_url,
        "ROLLCALL_JWT_SECRET": settings.jwt_secret,
        "ROLLCALL_STORAGE_URL": settings.storage_url,
        "ROLLCALL_RATE_LIMITS": "off",
        "ROLLCALL_DB_POOL_MIN": "2",
    }
    return child_env(**{**defaults, **overrides})


def run_rollcall(
    *arguments: str, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``rollcall …`` run to its end from the repository's root; its output as text."""
    return subprocess.run(
        rollcall_command(*arguments),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.asynccontextmanager
async def api_process(
    settings: Settings,
    *,
    retry: RetryPolicy | None = None,
    usage: Callable[[], Usage] = calm,
) -> AsyncIterator[httpx.AsyncClient]:
    """An API process of its own (app, lifespan, L1 cache, pools) and a client for it."""
    async with (
        LifespanManager(create_app(settings, retry=retry, usage=usage)) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://rollcall.test"
        ) as http,
    ):
        yield http


@contextlib.contextmanager
def counted_statements() -> Iterator[list[str]]:
    """Every SQL statement any engine in this process sends while the block runs."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", record)


async def run_jobs(settings: Settings, **options: Any) -> list[Worker]:
    """Both workers in burst mode, without cron jobs, until the queues are empty."""
    async with shared_context(settings, retry_backoff_seconds=0.05, usage=calm) as shared:
        workers = create_workers(settings, shared, cron_jobs=(), burst=True, **options)
        await run_workers(workers)
    return workers


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    body: dict[str, Any] = response.json()
    return body


async def follow_link(api: httpx.AsyncClient, url: str) -> httpx.Response:
    """Follow a download link as a browser would: to the API, then to S3 when redirected."""
    response = await api.get(url)
    if response.status_code != 303:
        return response
    assert response.headers["cache-control"] == "no-store"
    async with httpx.AsyncClient() as http:
        return await http.get(response.headers["location"])


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]
