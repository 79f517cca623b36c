"""Medical certificates: upload (GraphQL multipart request), scan status, review, links."""

from __future__ import annotations

from datetime import date, datetime

import strawberry
from strawberry.file_uploads import Upload

from graph.attributes import from_attributes
from graph.pagination import Connection
from resolvers import certificates as certificate_resolvers
from resolvers.context import Info
from services import certificates, models

FileStatus = strawberry.enum(
    models.FileStatus,
    description="PENDING (stored, waiting for the virus scan) → SCANNING → AWAITING_REVIEW, "
    "then APPROVED or REJECTED by a reviewer; QUARANTINED when the scan found a threat.",
)
ReviewDecision = strawberry.enum(certificates.Decision, name="ReviewDecision")


@strawberry.type(description="What the virus scan found.")
class ScanResult:
    clean: bool
    threats: list[str]
    engine: str
    scanned_at: datetime | None


@strawberry.type(description="A medical certificate covering a student's absences.")
class MedicalCertificate:
    id: strawberry.ID
    student_id: strawberry.ID
    file_name: str
    content_type: str
    size: int = strawberry.field(description="Bytes.")
    status: FileStatus
    rejection_reason: str | None
    uploaded_at: datetime
    uploaded_by: strawberry.ID | None
    covers_from: date
    covers_to: date
    description: str | None
    reviewed_at: datetime | None
    reviewed_by: strawberry.ID | None
    excused_records: int | None = strawberry.field(
        description="On approval: how many ABSENT records in the covered dates became SICK."
    )
    model: strawberry.Private[models.MedicalCertificate]

    @classmethod
    def from_model(cls, certificate: models.MedicalCertificate) -> MedicalCertificate:
        return from_attributes(cls, certificate, model=certificate)

    @strawberry.field(description="Null until the scan is done.")
    def scan(self) -> ScanResult | None:
        found = self.model.scan_result
        if found is None:
            return None
        return ScanResult(
            clean=bool(found.get("clean")),
            threats=[str(threat) for threat in found.get("threats", [])],
            engine=str(found.get("engine", "")),
            scanned_at=self.model.scanned_at,
        )

    @strawberry.field(
        description="A link valid for 24 hours, made on each read. Null when quarantined, "
        "and, until the scan finds it clean, for everyone but the uploader."
    )
    def download_url(self, info: Info) -> str | None:
        return certificate_resolvers.download_url(info, self.model)


@strawberry.input
class MedicalCertificateInput:
    covers_from: date = strawberry.field(description="The first day the certificate covers.")
    covers_to: date = strawberry.field(description="The last day (at most 60 days in all).")
    description: str | None = None
    student_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Whose certificate: a student's own by default; teachers and admins "
        "name the student.",
    )


@strawberry.type
class CertificateQuery:
    @strawberry.field(
        description="Certificates you may read, newest first: a student's own, a teacher's "
        "classes', an admin's whole school."
    )
    async def medical_certificates(
        self,
        info: Info,
        student_id: strawberry.ID | None = None,
        status: FileStatus | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[MedicalCertificate]:
        page = await certificate_resolvers.certificates_page(info, student_id, status, first, after)
        return Connection.from_page(page, MedicalCertificate.from_model)


@strawberry.type
class CertificateMutation:
    @strawberry.mutation(
        description="Upload a certificate (GraphQL multipart request; send the header "
        "Apollo-Require-Preflight: true). PDF, PNG or JPEG up to 10 MB; it is scanned for "
        "viruses, then reviewed."
    )
    async def upload_medical_certificate(
        self, info: Info, file: Upload, input: MedicalCertificateInput
    ) -> MedicalCertificate:
        certificate = await certificate_resolvers.upload(
            info,
            file,
            student_id=input.student_id,
            covers_from=input.covers_from,
            covers_to=input.covers_to,
            description=input.description,
        )
        return MedicalCertificate.from_model(certificate)

    @strawberry.mutation(
        description="Approve or reject a certificate awaiting review (admins, and the "
        "student's teachers). Approval turns the covered ABSENT records into SICK."
    )
    async def review_medical_certificate(
        self,
        info: Info,
        id: strawberry.ID,
        decision: ReviewDecision,
        reason: str | None = None,
    ) -> MedicalCertificate:
        certificate = await certificate_resolvers.review(info, id, decision, reason)
        return MedicalCertificate.from_model(certificate)
