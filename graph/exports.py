"""Exports of attendance: request one, follow it, download it."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from graph.attributes import from_attributes
from graph.pagination import Connection
from resolvers import exports as export_resolvers
from resolvers.context import Info
from services import exports, models

ExportFormat = strawberry.enum(
    models.ExportFormat,
    description="CSV: a header row, then one row per mark (UTF-8). JSON: an array of objects, "
    "one per line.",
)
ExportStatus = strawberry.enum(
    models.ExportStatus,
    description="PENDING (queued) → RUNNING → READY (stored; downloadUrl), or FAILED (see "
    "error); READY becomes EXPIRED (file deleted) after the retention time.",
)


@strawberry.type(
    description="An export of the attendance you may read: a student's own, a teacher's "
    "classes', an admin's (or partner's) whole school. Columns: date, period, studentId, "
    "studentName, classroom, subject, status, markedAt."
)
class Export:
    id: strawberry.ID
    format: ExportFormat
    from_: date = strawberry.field(name="from", description="The first day exported.")
    to: date = strawberry.field(description="The last day exported.")
    status: ExportStatus
    row_count: int | None = strawberry.field(description="Marks in the file, once READY.")
    size: int | None = strawberry.field(description="Bytes, once READY.")
    error: str | None = strawberry.field(description="Why it FAILED.")
    created_at: datetime
    completed_at: datetime | None = strawberry.field(description="When it became READY or FAILED.")
    model: strawberry.Private[models.Export]

    @classmethod
    def from_model(cls, export: models.Export) -> Export:
        return from_attributes(cls, export, from_=export.date_from, to=export.date_to, model=export)

    @strawberry.field(
        description="A link valid for 24 hours, made on each read; null until READY, and for "
        "anyone but the requester."
    )
    def download_url(self, info: Info) -> str | None:
        return export_resolvers.download_url(info, self.model)


@strawberry.input
class ExportInput:
    format: ExportFormat
    from_: date = strawberry.field(name="from", description="The first day to export.")
    to: date = strawberry.field(
        description=f"The last day to export (at most {exports.MAX_RANGE_DAYS} days in all)."
    )


@strawberry.type
class ExportQuery:
    @strawberry.field(description="Your exports, newest first.")
    async def exports(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[Export]:
        page = await export_resolvers.exports_page(info, first, after)
        return Connection.from_page(page, Export.from_model)

    @strawberry.field(description="One of your exports; null if unknown or someone else's.")
    async def export(self, info: Info, id: strawberry.ID) -> Export | None:
        found = await export_resolvers.own_export(info, id)
        return Export.from_model(found) if found else None


@strawberry.type
class ExportMutation:
    @strawberry.mutation(
        description="Export the attendance you may read for a range of days (5 an hour). The "
        "file is built in the background; you get an EXPORT_READY notification with its link, "
        "and the export's downloadUrl."
    )
    async def request_export(self, info: Info, input: ExportInput) -> Export:
        export = await export_resolvers.request(
            info,
            exports.ExportRequest(format=input.format, date_from=input.from_, date_to=input.to),
        )
        return Export.from_model(export)
