"""The import job cut short and run again: it resumes after the last chunk that committed,
and the counts come out as if it had never stopped."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from services import roster_imports
from services.access import Access
from services.administration import Followers
from services.audit import Origin
from services.auth import Viewer
from services.cached_reads import create_cache
from services.models import RosterImport, RosterImportStatus, Student

ROWS = 7


def roster() -> bytes:
    lines = ["classroom,student_name,student_email"]
    lines += [f"Class 0,Student {n},s{n}@school.test" for n in range(ROWS)]
    lines.append("Class 0,Broken,broken")
    return ("\n".join(lines) + "\n").encode()


async def test_a_job_cut_short_resumes_after_its_last_committed_chunk(
    factory, settings, session_factory, arq_redis, monkeypatch
):
    school = await factory.school(students=0)
    admin = Viewer(user_id=school.admin.id, tenant_id=school.tenant.id, role=school.admin.role)
    cache = create_cache(settings, session_factory=session_factory)
    followers = Followers(cache=cache, queue=arq_redis, refresh_delay_seconds=1, now=0.0)
    started = await roster_imports.request_import(
        session_factory=session_factory,
        access=Access(viewer=admin, session_factory=session_factory),
        queue=arq_redis,
        file_name="roster.csv",
        data=roster(),
        dry_run=False,
        origin=Origin(),
    )
    monkeypatch.setattr(roster_imports, "CHUNK_ROWS", 3)
    applied = roster_imports.apply_chunk
    calls = 0

    async def failing_second(*args: Any, **kwargs: Any) -> roster_imports.ChunkResult:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionResetError("the database went away")
        return await applied(*args, **kwargs)

    monkeypatch.setattr(roster_imports, "apply_chunk", failing_second)
    run = {"session_factory": session_factory, "tenant_id": school.tenant.id}
    with pytest.raises(ConnectionResetError):
        await roster_imports.run_import(**run, import_id=started.id, followers=followers)
    async with session_factory() as session:
        halfway = await session.get(RosterImport, started.id)
    assert (halfway.status, halfway.processed_rows, halfway.created) == (
        RosterImportStatus.RUNNING,
        3,
        3,
    )
    assert await roster_imports.run_import(**run, import_id=started.id, followers=followers) is (
        RosterImportStatus.SUCCEEDED
    )
    async with session_factory() as session:
        done = await session.get(RosterImport, started.id, populate_existing=True)
        students = await session.scalar(
            select(func.count()).select_from(Student).where(Student.tenant_id == school.tenant.id)
        )
    assert (done.processed_rows, done.created, done.unchanged, students) == (ROWS, ROWS, 0, ROWS)
    assert [error["line"] for error in done.errors] == [ROWS + 2]
    assert done.source is None
    assert await roster_imports.run_import(**run, import_id=started.id, followers=followers) is (
        RosterImportStatus.SUCCEEDED
    )
    await cache.redis.aclose()
