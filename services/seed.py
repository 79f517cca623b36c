"""Demo and bulk data. The demo tenant is exactly what the API contract promises."""

from __future__ import annotations

import hashlib
import io
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth import hash_password
from services.models import (
    AttendanceRecord,
    AttendanceStatus,
    Classroom,
    ClassroomSubject,
    FileStatus,
    MedicalCertificate,
    Notification,
    NotificationType,
    Role,
    Severity,
    Student,
    Subject,
    TeacherAssignment,
    Tenant,
    User,
)
from services.platform.db import SessionFactory
from services.platform.storage import ObjectStore, new_key
from services.statistics import refresh_statistics

DEMO_SLUG = "demo"
DEMO_PASSWORD = "demo-password"
DEMO_PERIODS = 6
DEMO_DAYS = 30
SUBJECT_NAMES = ("Mathematics", "Physics", "Literature", "History", "Biology", "English")
ATTENDANCE_COLUMNS = (
    "tenant_id",
    "student_id",
    "classroom_id",
    "subject_id",
    "date",
    "period",
    "status",
    "marked_by",
)


@dataclass(frozen=True, slots=True)
class Profile:
    """How many of a student's 180 demo periods fall in each status (the rest PRESENT), and
    where in the 30 days the missed ones fall (``recent`` weighs the last days: above 1 the
    student is declining, below 1 improving)."""

    absent: int
    sick: int
    leave: int
    recent: float = 1.0


# The bands of class 10-A, by the default thresholds (MAHROOM ≤ 75, WARNING < 80, TASDIQ < 85
# with sick or leave): periods missed of 180, each student drawing their own within the band.
DEMO_BANDS = {
    "OK": (0, 24),  # 86.7–100 %
    "TASDIQ": (28, 35),  # 80.6–84.4 %, most of it sick or on leave
    "WARNING": (37, 44),  # 75.6–79.4 %
    "MAHROOM": (46, 63),  # 65–74.4 %
}
# A few students whose attendance is changing: missed periods mostly early on (improving) or
# mostly in the last weeks (declining); the trend compares the last 14 days with the 14 before.
IMPROVING = frozenset({4, 9, 27, 33})
DECLINING = frozenset({6, 14, 30, 38})


def school_days(last: date, count: int) -> list[date]:
    """The ``count`` weekdays up to and including ``last``, oldest first."""
    days: list[date] = []
    day = last
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    return days[::-1]


def demo_band(number: int) -> str:
    """Students 1–25 OK, 26–31 TASDIQ, 32–36 WARNING, 37–40 MAHROOM."""
    if number <= 25:
        return "OK"
    if number <= 31:
        return "TASDIQ"
    if number <= 36:
        return "WARNING"
    return "MAHROOM"


def demo_profile(number: int, rng: random.Random) -> Profile:
    """Student ``number`` of 10-A: a rate drawn within their band, its misses split between
    absences and sick or leave periods, and their trend."""
    band = demo_band(number)
    low, high = DEMO_BANDS[band]
    missed = rng.randint(low, high)
    excused = (
        rng.randint(missed * 6 // 10, missed * 8 // 10)
        if band == "TASDIQ"
        else rng.randint(0, missed // 3)
    )
    sick = rng.randint(excused // 2, excused)
    recent = 4.0 if number in DECLINING else 0.1 if number in IMPROVING else 1.0
    return Profile(absent=missed - excused, sick=sick, leave=excused - sick, recent=recent)


def profile_statuses(profile: Profile, slots: int, rng: random.Random) -> list[AttendanceStatus]:
    """``slots`` statuses, oldest first, with the profile's counts; missed periods land in the
    last third of the slots ``profile.recent`` times as often as elsewhere."""
    missed = (
        [AttendanceStatus.ABSENT] * profile.absent
        + [AttendanceStatus.SICK] * profile.sick
        + [AttendanceStatus.LEAVE] * profile.leave
    )
    rng.shuffle(missed)
    recent_from = slots * 2 // 3

    def key(slot: int) -> float:
        # Weighted sampling without replacement (Efraimidis and Spirakis): the largest keys.
        weight = profile.recent if slot >= recent_from else 1.0
        return float(rng.random() ** (1 / weight))

    chosen = sorted(range(slots), key=key, reverse=True)[: len(missed)]
    statuses = [AttendanceStatus.PRESENT] * slots
    for slot, status in zip(sorted(chosen), missed, strict=True):
        statuses[slot] = status
    return statuses


def random_statuses(slots: int, rng: random.Random) -> list[AttendanceStatus]:
    """A plausible mix: mostly present, each student with their own reliability."""
    reliability = rng.uniform(0.6, 1.0)
    other = (AttendanceStatus.ABSENT, AttendanceStatus.SICK, AttendanceStatus.LEAVE)
    return [
        AttendanceStatus.PRESENT if rng.random() < reliability else rng.choice(other)
        for _ in range(slots)
    ]


async def copy_attendance(session: AsyncSession, rows: Iterator[tuple[Any, ...]]) -> None:
    """COPY is an order of magnitude faster than INSERT for hundreds of thousands of marks."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        "attendance_records", records=rows, columns=ATTENDANCE_COLUMNS
    )


async def create_school(
    session: AsyncSession,
    *,
    slug: str,
    name: str,
    classroom_names: Sequence[str],
    staff_domain: str,
    periods_per_day: int,
) -> tuple[Tenant, User, list[Classroom], list[Subject]]:
    tenant = Tenant(slug=slug, name=name, periods_per_day=periods_per_day)
    session.add(tenant)
    await session.flush()
    password = hash_password(DEMO_PASSWORD)
    admin = User(
        tenant_id=tenant.id, email=f"admin@{staff_domain}", password_hash=password, role=Role.ADMIN
    )
    teacher = User(
        tenant_id=tenant.id,
        email=f"teacher@{staff_domain}",
        password_hash=password,
        role=Role.TEACHER,
    )
    classrooms = [Classroom(tenant_id=tenant.id, name=room) for room in classroom_names]
    subjects = [Subject(tenant_id=tenant.id, name=subject) for subject in SUBJECT_NAMES]
    session.add_all([admin, teacher, *classrooms, *subjects])
    await session.flush()
    session.add_all(
        [
            TeacherAssignment(tenant_id=tenant.id, teacher_id=teacher.id, classroom_id=room.id)
            for room in classrooms
        ]
        + [
            ClassroomSubject(tenant_id=tenant.id, classroom_id=room.id, subject_id=subject.id)
            for room in classrooms
            for subject in subjects
        ]
    )
    await session.flush()
    return tenant, teacher, classrooms, subjects


def attendance_rows(
    *,
    tenant: Tenant,
    student: tuple[uuid.UUID, uuid.UUID],
    statuses: Sequence[AttendanceStatus],
    days: Sequence[date],
    subjects: Sequence[Subject],
    periods: int,
    teacher: User,
) -> Iterator[tuple[Any, ...]]:
    student_id, classroom_id = student
    for index, status in enumerate(statuses):
        day, period = days[index // periods], index % periods + 1
        subject = subjects[(period - 1) % len(subjects)]
        yield (
            tenant.id,
            student_id,
            classroom_id,
            subject.id,
            day,
            period,
            status.value,
            teacher.id,
        )


async def seed_demo(
    *,
    session_factory: SessionFactory,
    today: date,
    reset: bool = False,
    store: ObjectStore | None = None,
) -> bool:
    """Create the demo tenant; False when it already exists and ``reset`` is not asked for.
    With a ``store``, two certificates (scanned clean) wait for review."""
    async with session_factory() as session, session.begin():
        existing = await session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
        if existing is not None:
            if not reset:
                return False
            await session.execute(delete(Tenant).where(Tenant.id == existing.id))
        tenant, teacher, classrooms, subjects = await create_school(
            session,
            slug=DEMO_SLUG,
            name="Demo School",
            classroom_names=("10-A", "10-B", "11-A"),
            staff_domain="demo.school",
            periods_per_day=DEMO_PERIODS,
        )
        rng = random.Random(2026)
        password = hash_password(DEMO_PASSWORD)
        accounts = [
            User(
                tenant_id=tenant.id,
                email=f"student{n}@demo.school",
                password_hash=password,
                role=Role.STUDENT,
            )
            for n in range(1, 41)
        ]
        # The other classes' students have accounts without a password, as an admin or a
        # roster import leaves them: each sets one by requestPasswordReset.
        others = [
            (
                room,
                n,
                User(
                    tenant_id=tenant.id,
                    email=f"{room.name.replace('-', '').lower()}-{n:02d}@demo.school",
                    role=Role.STUDENT,
                ),
            )
            for room in classrooms[1:]
            for n in range(1, 26)
        ]
        session.add_all([*accounts, *(account for _, _, account in others)])
        await session.flush()
        students = [
            Student(
                tenant_id=tenant.id,
                classroom_id=classrooms[0].id,
                user_id=account.id,
                name=f"Student {n:02d}",
            )
            for n, account in enumerate(accounts, start=1)
        ] + [
            Student(
                tenant_id=tenant.id,
                classroom_id=room.id,
                user_id=account.id,
                name=f"{room.name} Student {n:02d}",
            )
            for room, n, account in others
        ]
        session.add_all(students)
        await session.flush()
        days = school_days(today, DEMO_DAYS)
        slots = len(days) * DEMO_PERIODS

        def rows() -> Iterator[tuple[Any, ...]]:
            for number, student in enumerate(students, start=1):
                statuses = (
                    profile_statuses(demo_profile(number, rng), slots, rng)
                    if number <= len(accounts)
                    else random_statuses(slots, rng)
                )
                yield from attendance_rows(
                    tenant=tenant,
                    student=(student.id, student.classroom_id),
                    statuses=statuses,
                    days=days,
                    subjects=subjects,
                    periods=DEMO_PERIODS,
                    teacher=teacher,
                )

        await copy_attendance(session, rows())
        session.add_all(_demo_announcements(tenant.id, accounts, today))
    if store is not None:
        await _demo_certificates(session_factory, store, tenant.id, accounts[:2])
    await refresh_statistics(session_factory=session_factory)
    return True


def _demo_announcements(
    tenant_id: uuid.UUID, accounts: Sequence[User], today: date
) -> list[Notification]:
    """What a student finds in their inbox: last week's announcement read, today's not (the
    attendance alerts come from the alert job, as they would)."""
    noon = datetime(today.year, today.month, today.day, 12, tzinfo=UTC)
    week_ago = noon - timedelta(days=7)
    notices = (
        (
            "Timetable for the new term",
            "The timetable for the new term is on the notice board.",
            week_ago,
            week_ago + timedelta(days=1),
        ),
        (
            "Parents' evening on Thursday",
            "Parents' evening is on Thursday from 17:00; book a slot at the office.",
            noon,
            None,
        ),
    )
    return [
        Notification(
            tenant_id=tenant_id,
            user_id=account.id,
            type=NotificationType.SYSTEM_ANNOUNCEMENT,
            severity=Severity.INFO,
            title=title,
            message=message,
            created_at=created_at,
            read_at=read_at,
        )
        for account in accounts
        for title, message, created_at, read_at in notices
    ]


def demo_certificate_pdf(title: str) -> bytes:
    """A one-page PDF that says ``title`` (ASCII)."""
    text = title.replace("\\", "").replace("(", "").replace(")", "")
    content = f"BT /F1 14 Tf 40 120 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 420 200] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    table = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer << /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        table,
    )
    return bytes(out)


async def _demo_certificates(
    session_factory: SessionFactory,
    store: ObjectStore,
    tenant_id: uuid.UUID,
    accounts: Sequence[User],
) -> None:
    """For each account's student: a certificate covering their latest absence, scanned
    clean and awaiting review, so a reviewer has something to approve in GraphiQL."""
    for account in accounts:
        async with session_factory() as session:
            student_id, absent_on = (
                await session.execute(
                    select(Student.id, func.max(AttendanceRecord.date))
                    .join(AttendanceRecord, AttendanceRecord.student_id == Student.id)
                    .where(
                        Student.user_id == account.id,
                        AttendanceRecord.status == AttendanceStatus.ABSENT,
                    )
                    .group_by(Student.id)
                )
            ).one()
        content = demo_certificate_pdf(f"Medical certificate - {account.email} - {absent_on}")
        key = new_key(tenant_id, "certificates")
        await store.put(key, io.BytesIO(content), size=len(content), content_type="application/pdf")
        async with session_factory() as session, session.begin():
            session.add(
                MedicalCertificate(
                    tenant_id=tenant_id,
                    student_id=student_id,
                    uploaded_by=account.id,
                    file_name=f"certificate-{absent_on}.pdf",
                    content_type="application/pdf",
                    size=len(content),
                    sha256=hashlib.sha256(content).hexdigest(),
                    object_key=key,
                    status=FileStatus.AWAITING_REVIEW,
                    covers_from=absent_on,
                    covers_to=absent_on,
                    description="Seeded demo certificate",
                    scan_result={"clean": True, "threats": [], "engine": "demo-seed"},
                    scanned_at=func.now(),
                )
            )
