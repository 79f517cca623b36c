"""SQLAlchemy models. Every table carries ``tenant_id``; indexes lead with it."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Role(StrEnum):
    STUDENT = "STUDENT"
    TEACHER = "TEACHER"
    ADMIN = "ADMIN"
    PARTNER = "PARTNER"


class AttendanceStatus(StrEnum):
    PRESENT = "PRESENT"
    ABSENT = "ABSENT"
    SICK = "SICK"
    LEAVE = "LEAVE"
    NOT_MARKED = "NOT_MARKED"


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )


def _tenant_fk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = _uuid_pk()
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    periods_per_day: Mapped[int] = mapped_column(SmallInteger, server_default="8")
    mahroom_threshold: Mapped[Decimal] = mapped_column(Numeric(5, 2), server_default="75")
    warning_threshold: Mapped[Decimal] = mapped_column(Numeric(5, 2), server_default="80")
    tasdiq_threshold: Mapped[Decimal] = mapped_column(Numeric(5, 2), server_default="85")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),
        Index("ix_users_tenant_role_active", "tenant_id", "role", postgresql_where=text("active")),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    email: Mapped[str] = mapped_column(String(254))
    # None until the account's owner sets one (services.password_resets): created and imported
    # accounts have none, and no password logs in to them.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(Enum(Role, name="user_role"))
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Tokens issued before this are refused (services.credentials).
    credentials_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Classroom(Base):
    __tablename__ = "classrooms"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_classrooms_tenant_name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(100))


class Subject(Base):
    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_subjects_tenant_name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(100))


class ClassroomSubject(Base):
    """The subjects taught in a classroom."""

    __tablename__ = "classroom_subjects"

    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    classroom_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), primary_key=True
    )
    subject_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), primary_key=True
    )


class TeacherAssignment(Base):
    """A teacher (a user with role TEACHER) teaches a classroom."""

    __tablename__ = "teacher_assignments"
    __table_args__ = (Index("ix_teacher_assignments_classroom", "tenant_id", "classroom_id"),)

    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    teacher_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    classroom_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), primary_key=True
    )


class Student(Base):
    __tablename__ = "students"
    __table_args__ = (
        Index("ix_students_tenant_classroom_name", "tenant_id", "classroom_id", "name"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    classroom_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classrooms.id"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), unique=True
    )
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AttendanceRecord(Base):
    """One mark: a student's status for one period of one day."""

    __tablename__ = "attendance_records"
    __table_args__ = (
        # One mark per student, day and period; INCLUDE makes a student's summary index-only.
        Index(
            "uq_attendance_student_date_period",
            "tenant_id",
            "student_id",
            "date",
            "period",
            unique=True,
            postgresql_include=["status"],
        ),
        Index("ix_attendance_tenant_classroom_date", "tenant_id", "classroom_id", "date"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    classroom_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classrooms.id"))
    subject_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subjects.id"))
    date: Mapped[date] = mapped_column(Date)
    period: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[AttendanceStatus] = mapped_column(
        Enum(AttendanceStatus, name="attendance_status")
    )
    marked_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    marked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class NotificationType(StrEnum):
    ATTENDANCE_WARNING = "ATTENDANCE_WARNING"
    MAHROOM_ALERT = "MAHROOM_ALERT"
    TASDIQ_ALERT = "TASDIQ_ALERT"
    FILE_APPROVED = "FILE_APPROVED"
    FILE_REJECTED = "FILE_REJECTED"
    EXPORT_READY = "EXPORT_READY"
    SYSTEM_ANNOUNCEMENT = "SYSTEM_ANNOUNCEMENT"


class Severity(StrEnum):
    INFO = "INFO"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    ERROR = "ERROR"


class Notification(Base):
    """A message to one user; ``dedupe_key`` makes a logical notification happen once."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_recipient_created", "tenant_id", "user_id", "created_at", "id"),
        Index(
            "ix_notifications_recipient_unread",
            "tenant_id",
            "user_id",
            postgresql_where=text("read_at IS NULL"),
        ),
        UniqueConstraint("tenant_id", "dedupe_key", name="uq_notifications_dedupe_key"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[NotificationType] = mapped_column(Enum(NotificationType, name="notification_type"))
    severity: Mapped[Severity] = mapped_column(Enum(Severity, name="notification_severity"))
    title: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    action_url: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    in_app: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NotificationPreferences(Base):
    """Channels and categories a user receives; no row means every default (all on)."""

    __tablename__ = "notification_preferences"

    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    email_enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    in_app_enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    attendance_alerts: Mapped[bool] = mapped_column(server_default=text("true"))
    file_updates: Mapped[bool] = mapped_column(server_default=text("true"))
    system_announcements: Mapped[bool] = mapped_column(server_default=text("true"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AlertState(Base):
    """A student's standing when last checked, and how many times it became non-OK.

    ``crossings`` numbers the alerts: the n-th crossing's notification has dedupe key
    ``standing:{student}:{n}``, so a check repeated by a retried job notifies nobody twice.
    """

    __tablename__ = "attendance_alert_states"

    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    student_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("students.id", ondelete="CASCADE"), primary_key=True
    )
    standing: Mapped[str] = mapped_column(String(10), server_default="OK")
    crossings: Mapped[int] = mapped_column(server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DeadLetter(Base):
    """A job that failed every try: its whole payload and last error, until retried by hand.

    Kept in PostgreSQL rather than Redis so that memory pressure can never evict it.
    """

    __tablename__ = "dead_letter_jobs"
    __table_args__ = (Index("ix_dead_letter_jobs_queue_failed", "queue", "failed_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(100))
    job_id: Mapped[str] = mapped_column(String(200))
    function: Mapped[str] = mapped_column(String(100))
    args: Mapped[list[Any]] = mapped_column(JSONB)
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    tries: Mapped[int]
    error: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    retried_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxJob(Base):
    """A job that could not be enqueued (Redis down); drained into its queue when Redis returns."""

    __tablename__ = "job_outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(100))
    job_id: Mapped[str | None] = mapped_column(String(200))
    function: Mapped[str] = mapped_column(String(100))
    args: Mapped[list[Any]] = mapped_column(JSONB)
    defer_seconds: Mapped[float] = mapped_column(server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Channel(StrEnum):
    IN_APP = "IN_APP"
    EMAIL = "EMAIL"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


class NotificationDelivery(Base):
    """How one notification reached (or failed to reach) its recipient on one channel."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel", name="uq_notification_deliveries_channel"),
        Index("ix_notification_deliveries_status", "tenant_id", "status"),
        # The sweep of e-mails whose job was lost: few rows, across tenants.
        Index(
            "ix_notification_deliveries_pending_email",
            "updated_at",
            postgresql_where=text("status = 'PENDING' AND channel = 'EMAIL'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE")
    )
    channel: Mapped[Channel] = mapped_column(Enum(Channel, name="delivery_channel"))
    status: Mapped[DeliveryStatus] = mapped_column(Enum(DeliveryStatus, name="delivery_status"))
    attempts: Mapped[int] = mapped_column(server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FileStatus(StrEnum):
    """A certificate's way: PENDING (stored, queued) → SCANNING → AWAITING_REVIEW, then
    APPROVED or REJECTED by a reviewer; QUARANTINED when the scan finds a threat."""

    PENDING = "PENDING"
    SCANNING = "SCANNING"
    AWAITING_REVIEW = "AWAITING_REVIEW"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    QUARANTINED = "QUARANTINED"


class MedicalCertificate(Base):
    """An uploaded certificate; its bytes live in the object store under ``object_key``."""

    __tablename__ = "medical_certificates"
    __table_args__ = (
        Index("ix_medical_certificates_student", "tenant_id", "student_id", "uploaded_at", "id"),
        Index("ix_medical_certificates_status", "tenant_id", "status", "uploaded_at", "id"),
        CheckConstraint("covers_from <= covers_to", name="ck_medical_certificates_covers"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    file_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    object_key: Mapped[str] = mapped_column(String(300), unique=True)
    status: Mapped[FileStatus] = mapped_column(Enum(FileStatus, name="file_status"))
    covers_from: Mapped[date] = mapped_column(Date)
    covers_to: Mapped[date] = mapped_column(Date)
    description: Mapped[str | None] = mapped_column(Text)
    scan_result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    scanned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reviewed_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    excused_records: Mapped[int | None]
    uploaded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class AuditAction(StrEnum):
    DATA_EXPORT = "DATA_EXPORT"
    FILE_UPLOAD = "FILE_UPLOAD"
    FILE_DOWNLOAD = "FILE_DOWNLOAD"
    LOGIN_SUCCESS = "LOGIN_SUCCESS"
    LOGIN_FAILURE = "LOGIN_FAILURE"
    PASSWORD_CHANGE = "PASSWORD_CHANGE"
    PROFILE_UPDATE = "PROFILE_UPDATE"
    NOTIFICATION_SENT = "NOTIFICATION_SENT"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    CERTIFICATE_REVIEW = "CERTIFICATE_REVIEW"
    CLASSROOM_CREATE = "CLASSROOM_CREATE"
    STUDENT_CREATE = "STUDENT_CREATE"
    STUDENT_MOVE = "STUDENT_MOVE"
    TEACHER_ASSIGN = "TEACHER_ASSIGN"
    THRESHOLDS_UPDATE = "THRESHOLDS_UPDATE"
    ROSTER_IMPORT = "ROSTER_IMPORT"
    PASSWORD_RESET_REQUEST = "PASSWORD_RESET_REQUEST"


class AuditLog(Base):
    """Who did what, when, from where. Partitioned by month on ``timestamp`` (see migration
    0006); no foreign keys, so entries outlive what they describe."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("ix_audit_logs_tenant_timestamp", "tenant_id", "timestamp"),
        Index("ix_audit_logs_tenant_user_timestamp", "tenant_id", "user_id", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    timestamp: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), primary_key=True, server_default=func.now()
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    action: Mapped[AuditAction] = mapped_column(Enum(AuditAction, name="audit_action"))
    resource: Mapped[str] = mapped_column(String(100))
    resource_id: Mapped[str | None] = mapped_column(String(200))
    success: Mapped[bool]
    ip_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, server_default=text("'{}'::jsonb")
    )


class ExportFormat(StrEnum):
    CSV = "CSV"
    JSON = "JSON"


class ExportStatus(StrEnum):
    """An export's way: PENDING (queued) → RUNNING → READY (stored, linked), or FAILED;
    a READY one is EXPIRED (its file deleted) after the retention time."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    READY = "READY"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


class Export(Base):
    """One requested export of attendance; its file lives in the object store under
    ``object_key`` once READY."""

    __tablename__ = "exports"
    __table_args__ = (
        Index("ix_exports_requester_created", "tenant_id", "requested_by", "created_at", "id"),
        # The expiry job's scan: READY exports by age, across tenants.
        Index(
            "ix_exports_ready_completed", "completed_at", postgresql_where=text("status = 'READY'")
        ),
        CheckConstraint("date_from <= date_to", name="ck_exports_range"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    requested_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    format: Mapped[ExportFormat] = mapped_column(Enum(ExportFormat, name="export_format"))
    date_from: Mapped[date] = mapped_column(Date)
    date_to: Mapped[date] = mapped_column(Date)
    status: Mapped[ExportStatus] = mapped_column(Enum(ExportStatus, name="export_status"))
    object_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    row_count: Mapped[int | None]
    size: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TrustedDocument(Base):
    """A GraphQL document registered as allowed (``rollcall documents register``), by the
    SHA-256 of its text. Deployment-wide, not per tenant: it is the API's own allow-list."""

    __tablename__ = "trusted_documents"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    operation_names: Mapped[list[str]] = mapped_column(ARRAY(Text))
    manifest: Mapped[str] = mapped_column(String(200))
    registered_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class RosterImportStatus(StrEnum):
    """An import's way: PENDING (queued) → RUNNING → SUCCEEDED (rows with errors included),
    or FAILED (a header without the required columns, or every try of the job failed)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class RosterImport(Base):
    """One uploaded roster and what importing it did, updated as the job goes.

    The file's bytes are kept in ``source`` until the job ends: a roster is at most a few MB,
    and in the row it commits with the request and needs no object-store clean-up.
    """

    __tablename__ = "roster_imports"
    __table_args__ = (Index("ix_roster_imports_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    requested_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    dry_run: Mapped[bool]
    source: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[RosterImportStatus] = mapped_column(
        Enum(RosterImportStatus, name="roster_import_status")
    )
    total_rows: Mapped[int | None]
    processed_rows: Mapped[int] = mapped_column(server_default="0")
    created: Mapped[int] = mapped_column(server_default="0")
    updated: Mapped[int] = mapped_column(server_default="0")
    unchanged: Mapped[int] = mapped_column(server_default="0")
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PasswordReset(Base):
    """A one-time password-reset token, kept as its SHA-256 only: whoever reads the table
    cannot use it. Spent by ``used_at``; a newer request or a reset revokes the rest."""

    __tablename__ = "password_resets"
    __table_args__ = (Index("ix_password_resets_user", "tenant_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
