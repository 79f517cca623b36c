"""Logging in and the viewer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import strawberry
from strawberry.extensions import SchemaExtension

from graph.pagination import Connection
from graph.school import Classroom, Role, Student, Tenant, viewer_classrooms
from resolvers import auth as auth_resolvers
from resolvers.context import Context, Info
from resolvers.loaders import load_existing
from services import models


class ConfirmViewer(SchemaExtension):
    """Checks the token against its account once the operation has passed every check of the
    document, just before it runs: a refused document costs no lookup."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            await context.confirm_viewer()
        yield


@strawberry.type(description="The authenticated account.")
class Viewer:
    id: strawberry.ID
    email: str
    role: Role
    tenant: Tenant
    student_model: strawberry.Private[models.Student | None]

    @strawberry.field(description="The linked student record, for student accounts.")
    def student(self) -> Student | None:
        return Student.from_model(self.student_model) if self.student_model else None

    classrooms: Connection[Classroom] = strawberry.field(
        resolver=viewer_classrooms, description="The same as the classrooms query."
    )


@strawberry.type
class AuthPayload:
    token: str = strawberry.field(description="Send as Authorization: Bearer <token>.")
    expires_at: datetime
    user: Viewer


@strawberry.type
class AuthQuery:
    @strawberry.field(description="The authenticated account, its tenant and linked student.")
    async def me(self, info: Info) -> Viewer:
        context = info.context
        viewer = context.viewer
        user = await load_existing(context.loaders.users, viewer.user_id, "account")
        student = (
            await context.loaders.students.load(viewer.student_id) if viewer.student_id else None
        )
        return Viewer(
            id=strawberry.ID(str(user.id)),
            email=user.email,
            role=user.role,
            tenant=Tenant.from_model(await context.tenant()),
            student_model=student,
        )


@strawberry.type
class AuthMutation:
    @strawberry.mutation(description="Exchange credentials for a signed token.")
    async def login(self, info: Info, tenant: str, email: str, password: str) -> AuthPayload:
        result = await auth_resolvers.login(info, tenant, email, password)
        return AuthPayload(
            token=result.token,
            expires_at=result.expires_at,
            user=Viewer(
                id=strawberry.ID(str(result.user.id)),
                email=result.user.email,
                role=result.user.role,
                tenant=Tenant.from_model(result.tenant),
                student_model=result.student,
            ),
        )

    @strawberry.mutation(
        description="Replace your password (12 to 128 characters), proving the current one. "
        "Wrong current passwords are limited like failed logins (the login rate limit). Every "
        "token issued before the change, this one included, is refused from then on: log in "
        "again."
    )
    async def change_password(self, info: Info, current_password: str, new_password: str) -> bool:
        await auth_resolvers.change_password(info, current_password, new_password)
        return True
