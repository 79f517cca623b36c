"""The staff side of the schema: running a school's directory, thresholds and rosters, and
setting passwords by emailed link."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.file_uploads import Upload

from graph.attributes import from_attributes
from graph.school import Classroom, Student
from resolvers import administration as admin_resolvers
from resolvers.context import Info
from services import models
from services.rosters import MAX_ROWS

RosterImportStatus = strawberry.enum(
    models.RosterImportStatus, description="Where a roster import stands."
)


@strawberry.type(description="The tenant's attendance thresholds, in percent.")
class AttendanceThresholds:
    mahroom_at_or_below: float = strawberry.field(description="MAHROOM at or below this rate.")
    warning_below: float = strawberry.field(description="WARNING below this rate.")
    tasdiq_below: float = strawberry.field(
        description="TASDIQ below this rate while the student has SICK or LEAVE records."
    )

    @classmethod
    def from_model(cls, tenant: models.Tenant) -> AttendanceThresholds:
        return cls(
            mahroom_at_or_below=float(tenant.mahroom_threshold),
            warning_below=float(tenant.warning_threshold),
            tasdiq_below=float(tenant.tasdiq_threshold),
        )


@strawberry.input(description="0 ≤ mahroomAtOrBelow < warningBelow ≤ tasdiqBelow ≤ 100.")
class AttendanceThresholdsInput:
    mahroom_at_or_below: float
    warning_below: float
    tasdiq_below: float


@strawberry.input
class CreateClassroomInput:
    name: str = strawberry.field(description="Unique in the school; up to 100 characters.")
    subject_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="The subjects taught; every subject of the school when null."
    )


@strawberry.input
class CreateStudentInput:
    name: str
    email: str = strawberry.field(
        description="The student's account; it has no password until set by requestPasswordReset."
    )
    classroom_id: strawberry.ID


@strawberry.type(description="A row of a roster that was not imported, and why.")
class RosterImportError:
    line: int = strawberry.field(
        description="The line of the file (1 is the header; 0: the import as a whole)."
    )
    column: str | None = strawberry.field(description="The column at fault, when one is.")
    message: str


@strawberry.type(description="An uploaded roster and what importing it did, as it goes.")
class RosterImport:
    id: strawberry.ID
    status: RosterImportStatus
    dry_run: bool = strawberry.field(description="Counted and checked only; nothing written.")
    file_name: str
    total_rows: int | None = strawberry.field(description="Rows in the file, once read.")
    processed_rows: int = strawberry.field(description="Good rows applied so far.")
    created: int = strawberry.field(description="Rows that created their student.")
    updated: int = strawberry.field(
        description="Rows that moved or renamed their student, or gave the class a new teacher."
    )
    unchanged: int = strawberry.field(description="Rows whose student was already so.")
    errors: list[RosterImportError] = strawberry.field(description="By line.")
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_model(cls, roster: models.RosterImport) -> RosterImport:
        return from_attributes(
            cls,
            roster,
            errors=[
                RosterImportError(
                    line=error["line"], column=error["column"], message=error["message"]
                )
                for error in roster.errors
            ],
        )


@strawberry.type
class AdministrationQuery:
    @strawberry.field(description="The attendance thresholds of the viewer's school.")
    async def attendance_thresholds(self, info: Info) -> AttendanceThresholds:
        return AttendanceThresholds.from_model(await info.context.tenant())

    @strawberry.field(
        description="A roster import's progress and result (admins); null if unknown."
    )
    async def roster_import(self, info: Info, id: strawberry.ID) -> RosterImport | None:
        found = await admin_resolvers.roster_import(info, id)
        return RosterImport.from_model(found) if found else None


@strawberry.type
class AdministrationMutation:
    @strawberry.mutation(description="A new classroom (admins); its name is unique in the school.")
    async def create_classroom(self, info: Info, input: CreateClassroomInput) -> Classroom:
        created = await admin_resolvers.create_classroom(info, input.name, input.subject_ids)
        return Classroom.from_model(created)

    @strawberry.mutation(
        description="A new student in a classroom, with an account without a password (admins)."
    )
    async def create_student(self, info: Info, input: CreateStudentInput) -> Student:
        created = await admin_resolvers.create_student(
            info, input.name, input.email, input.classroom_id
        )
        return Student.from_model(created)

    @strawberry.mutation(
        description="Move a student to another classroom (admins). Their records keep the "
        "classroom they were taken in; both classes' statistics and rankings refresh."
    )
    async def move_student(
        self, info: Info, student_id: strawberry.ID, classroom_id: strawberry.ID
    ) -> Student:
        return Student.from_model(
            await admin_resolvers.move_student(info, student_id, classroom_id)
        )

    @strawberry.mutation(
        description="Make the teacher with this email a teacher of the classroom (admins); "
        "the account is created, without a password, when new."
    )
    async def assign_teacher(
        self, info: Info, classroom_id: strawberry.ID, email: str
    ) -> Classroom:
        return Classroom.from_model(await admin_resolvers.assign_teacher(info, classroom_id, email))

    @strawberry.mutation(
        description=f"Import a roster CSV (admins; multipart request): header "
        f"classroom,student_name,student_email[,teacher_email], at most {MAX_ROWS:,} rows. "
        "Runs in the background: poll rosterImport(id). dryRun checks and counts only."
    )
    async def import_roster(self, info: Info, file: Upload, dry_run: bool = False) -> RosterImport:
        return RosterImport.from_model(await admin_resolvers.import_roster(info, file, dry_run))

    @strawberry.mutation(
        description="New attendance thresholds for the school (admins), in force on every "
        "standing at once."
    )
    async def update_attendance_thresholds(
        self, info: Info, input: AttendanceThresholdsInput
    ) -> AttendanceThresholds:
        tenant = await admin_resolvers.update_thresholds(
            info,
            mahroom=input.mahroom_at_or_below,
            warning=input.warning_below,
            tasdiq=input.tasdiq_below,
        )
        return AttendanceThresholds.from_model(tenant)

    @strawberry.mutation(
        description="Email a link that sets the account's password (valid 1 hour, once). "
        "Always true: it never tells whether the account exists. Rate limited."
    )
    async def request_password_reset(self, info: Info, tenant: str, email: str) -> bool:
        await admin_resolvers.request_password_reset(info, tenant, email)
        return True

    @strawberry.mutation(
        description="Set the password (12 to 128 characters) with a reset link's token; every "
        "earlier session and link of the account stops working."
    )
    async def reset_password(self, info: Info, token: str, new_password: str) -> bool:
        await admin_resolvers.reset_password(info, token, new_password)
        return True
