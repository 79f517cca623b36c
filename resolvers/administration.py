"""The staff side: classrooms, students, teachers, thresholds, rosters and password resets."""

from __future__ import annotations

import asyncio
import uuid
from typing import TypedDict

from starlette.datastructures import UploadFile

from resolvers.context import Info, parse_id
from services import administration, password_resets, roster_imports
from services.access import Access
from services.audit import Origin
from services.models import Classroom, RosterImport, Student, Tenant
from services.platform.db import SessionFactory
from services.platform.errors import Invalid
from services.rosters import MAX_FILE_BYTES


class _Change(TypedDict):
    session_factory: SessionFactory
    access: Access
    origin: Origin
    followers: administration.Followers


def _change(info: Info) -> _Change:
    """What every audited change with followers takes from the request: who makes it, from
    where, and what it hands on once it has committed."""
    context = info.context
    return _Change(
        session_factory=context.session_factory,
        access=context.access,
        origin=context.origin,
        followers=administration.Followers(
            cache=context.cache,
            queue=context.redis,
            refresh_delay_seconds=context.settings.statistics_refresh_delay_seconds,
            now=context.now().timestamp(),
        ),
    )


def _ids(values: list[str] | None, field: str) -> list[uuid.UUID] | None:
    if values is None:
        return None
    return [parse_id(value, f"{field}[{index}]") for index, value in enumerate(values)]


async def create_classroom(info: Info, name: str, subject_ids: list[str] | None) -> Classroom:
    context = info.context
    return await administration.create_classroom(
        session_factory=context.session_factory,
        access=context.access,
        name=name,
        subject_ids=_ids(subject_ids, "input.subjectIds"),
        origin=context.origin,
    )


async def create_student(info: Info, name: str, email: str, classroom_id: str) -> Student:
    return await administration.create_student(
        **_change(info),
        name=name,
        email=email,
        classroom_id=parse_id(classroom_id, "input.classroomId"),
    )


async def move_student(info: Info, student_id: str, classroom_id: str) -> Student:
    return await administration.move_student(
        **_change(info),
        student_id=parse_id(student_id, "studentId"),
        classroom_id=parse_id(classroom_id, "classroomId"),
    )


async def assign_teacher(info: Info, classroom_id: str, email: str) -> Classroom:
    return await administration.assign_teacher(
        **_change(info),
        classroom_id=parse_id(classroom_id, "classroomId"),
        email=email,
    )


async def update_thresholds(info: Info, *, mahroom: float, warning: float, tasdiq: float) -> Tenant:
    return await administration.update_thresholds(
        **_change(info),
        mahroom=mahroom,
        warning=warning,
        tasdiq=tasdiq,
    )


async def import_roster(info: Info, file: object, dry_run: bool) -> RosterImport:
    context = info.context
    # Before the upload is read: a refused caller's file is never taken in.
    context.access.ensure_admin("import rosters")
    if not isinstance(file, UploadFile):
        # The Upload scalar passes any JSON value through: only a multipart part is a file.
        raise Invalid("file", "Send the CSV as a GraphQL multipart request (see the README).")
    # One byte past the limit tells an oversized file; the read is blocking file I/O.
    data = await asyncio.to_thread(file.file.read, MAX_FILE_BYTES + 1)
    return await roster_imports.request_import(
        session_factory=context.session_factory,
        access=context.access,
        queue=context.redis,
        file_name=file.filename or "roster.csv",
        data=data,
        dry_run=dry_run,
        origin=context.origin,
    )


async def roster_import(info: Info, import_id: str) -> RosterImport | None:
    context = info.context
    key = parse_id(import_id, "id")
    access = context.access
    return await context.session_factory.reading(
        lambda session: roster_imports.roster_import(session, access=access, import_id=key)
    )


async def request_password_reset(info: Info, tenant: str, email: str) -> None:
    context = info.context
    with context.noting_refusal():
        await password_resets.request_reset(
            session_factory=context.session_factory,
            limiter=context.limiter,
            queue=context.redis,
            tenant_slug=tenant,
            email=email,
            origin=context.origin,
            base_url=context.public_url,
        )


async def reset_password(info: Info, token: str, new_password: str) -> None:
    context = info.context
    with context.noting_refusal():
        await password_resets.reset_password(
            session_factory=context.session_factory,
            limiter=context.limiter,
            token=token,
            new_password=new_password,
            origin=context.origin,
            cache=context.cache,
            queue=context.redis,
            clock=context.now,
        )
