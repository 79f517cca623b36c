"""SQLAlchemy models, a module per domain. Every table carries ``tenant_id``; indexes lead with it.

Importing this package registers every table on ``Base.metadata`` (Alembic and the tests use
it whole); code imports its names from here.
"""

from __future__ import annotations

from services.models.administration import PasswordReset, RosterImport, RosterImportStatus
from services.models.attendance import AlertState, AttendanceRecord, AttendanceStatus
from services.models.audit import AuditAction, AuditLog, TrustedDocument
from services.models.base import Base
from services.models.files import Export, ExportFormat, ExportStatus, FileStatus, MedicalCertificate
from services.models.jobs import DeadLetter, OutboxJob
from services.models.notifications import (
    Channel,
    DeliveryStatus,
    Notification,
    NotificationDelivery,
    NotificationPreferences,
    NotificationType,
    Severity,
)
from services.models.school import (
    Classroom,
    ClassroomSubject,
    Role,
    Student,
    Subject,
    TeacherAssignment,
    Tenant,
    User,
)

__all__ = [
    "AlertState",
    "AttendanceRecord",
    "AttendanceStatus",
    "AuditAction",
    "AuditLog",
    "Base",
    "Channel",
    "Classroom",
    "ClassroomSubject",
    "DeadLetter",
    "DeliveryStatus",
    "Export",
    "ExportFormat",
    "ExportStatus",
    "FileStatus",
    "MedicalCertificate",
    "Notification",
    "NotificationDelivery",
    "NotificationPreferences",
    "NotificationType",
    "OutboxJob",
    "PasswordReset",
    "Role",
    "RosterImport",
    "RosterImportStatus",
    "Severity",
    "Student",
    "Subject",
    "TeacherAssignment",
    "Tenant",
    "TrustedDocument",
    "User",
]
