"""foundation: tenants, users, classrooms, students, attendance and the statistics views

Revision ID: 0001
Revises:
"""

from alembic import op
import sqlalchemy as sa


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STUDENT_STATS_LIVE = """
CREATE VIEW student_attendance_stats_live AS
WITH counts AS (
    SELECT s.tenant_id, s.classroom_id, s.id AS student_id,
           count(ar.id) FILTER (WHERE ar.status <> 'NOT_MARKED') AS counted,
           count(ar.id) FILTER (WHERE ar.status = 'PRESENT') AS present,
           count(ar.id) FILTER (WHERE ar.status = 'ABSENT') AS absent,
           count(ar.id) FILTER (WHERE ar.status = 'SICK') AS sick,
           count(ar.id) FILTER (WHERE ar.status = 'LEAVE') AS leave
    FROM students s
    LEFT JOIN attendance_records ar ON ar.tenant_id = s.tenant_id AND ar.student_id = s.id
    GROUP BY s.tenant_id, s.classroom_id, s.id
), rates AS (
    SELECT counts.*,
           CASE WHEN counted = 0 THEN 100.0::float8
                ELSE present * 100.0::float8 / counted END AS attendance_rate
    FROM counts
)
SELECT rates.*,
       rank() OVER (PARTITION BY classroom_id ORDER BY attendance_rate DESC) AS rank,
       count(*) OVER (PARTITION BY classroom_id) AS class_size
FROM rates
"""

# Aggregates one of the two student views; "{source}" is filled in below.
CLASS_STATISTICS = """
SELECT c.tenant_id, c.id AS classroom_id, c.name AS classroom_name,
       count(st.student_id) AS total_students,
       coalesce(avg(st.attendance_rate), 0) AS average_attendance,
       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY st.attendance_rate), 0)
           AS median_attendance,
       coalesce(max(st.attendance_rate), 0) AS highest_attendance,
       coalesce(min(st.attendance_rate), 0) AS lowest_attendance,
       count(st.student_id) FILTER (WHERE st.attendance_rate < t.warning_threshold)
           AS students_at_risk,
       now() AS last_calculated
FROM classrooms c
JOIN tenants t ON t.id = c.tenant_id
LEFT JOIN {source} st ON st.tenant_id = c.tenant_id AND st.classroom_id = c.id
GROUP BY c.tenant_id, c.id, c.name, t.warning_threshold
"""


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("periods_per_day", sa.SmallInteger(), server_default="8", nullable=False),
        sa.Column(
            "mahroom_threshold",
            sa.Numeric(precision=5, scale=2),
            server_default="75",
            nullable=False,
        ),
        sa.Column(
            "warning_threshold",
            sa.Numeric(precision=5, scale=2),
            server_default="80",
            nullable=False,
        ),
        sa.Column(
            "tasdiq_threshold",
            sa.Numeric(precision=5, scale=2),
            server_default="85",
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    op.create_table(
        "classrooms",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_classrooms_tenant_name"),
    )
    op.create_table(
        "subjects",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_subjects_tenant_name"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column(
            "role",
            sa.Enum("STUDENT", "TEACHER", "ADMIN", "PARTNER", name="user_role"),
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),
    )
    op.create_index(
        "ix_users_tenant_role_active",
        "users",
        ["tenant_id", "role"],
        unique=False,
        postgresql_where=sa.text("active"),
    )
    op.create_table(
        "classroom_subjects",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("classroom_id", sa.UUID(), nullable=False),
        sa.Column("subject_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(["classroom_id"], ["classrooms.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("classroom_id", "subject_id"),
    )
    op.create_table(
        "students",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("classroom_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["classroom_id"],
            ["classrooms.id"],
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id"),
    )
    op.create_index(
        "ix_students_tenant_classroom_name",
        "students",
        ["tenant_id", "classroom_id", "name"],
        unique=False,
    )
    op.create_table(
        "teacher_assignments",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("teacher_id", sa.UUID(), nullable=False),
        sa.Column("classroom_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(["classroom_id"], ["classrooms.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["teacher_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("teacher_id", "classroom_id"),
    )
    op.create_index(
        "ix_teacher_assignments_classroom",
        "teacher_assignments",
        ["tenant_id", "classroom_id"],
        unique=False,
    )
    op.create_table(
        "attendance_records",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("student_id", sa.UUID(), nullable=False),
        sa.Column("classroom_id", sa.UUID(), nullable=False),
        sa.Column("subject_id", sa.UUID(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("period", sa.SmallInteger(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("PRESENT", "ABSENT", "SICK", "LEAVE", "NOT_MARKED", name="attendance_status"),
            nullable=False,
        ),
        sa.Column("marked_by", sa.UUID(), nullable=False),
        sa.Column(
            "marked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["classroom_id"],
            ["classrooms.id"],
        ),
        sa.ForeignKeyConstraint(
            ["marked_by"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(["student_id"], ["students.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_attendance_tenant_classroom_date",
        "attendance_records",
        ["tenant_id", "classroom_id", "date"],
        unique=False,
    )
    op.create_index(
        "uq_attendance_student_date_period",
        "attendance_records",
        ["tenant_id", "student_id", "date", "period"],
        unique=True,
        postgresql_include=["status"],
    )

    op.create_check_constraint("ck_attendance_period", "attendance_records", "period >= 1")
    op.create_check_constraint(
        "ck_tenants_thresholds",
        "tenants",
        "0 <= mahroom_threshold AND mahroom_threshold <= warning_threshold "
        "AND warning_threshold <= tasdiq_threshold AND tasdiq_threshold <= 100",
    )
    op.create_check_constraint("ck_tenants_periods", "tenants", "periods_per_day BETWEEN 1 AND 24")
    # Live views hold the definitions; the materialized views snapshot them, and services read a
    # live view (filtered by classroom, which the window partitions by) for rows not yet refreshed.
    # Student rows carry no timestamp, so REFRESH ... CONCURRENTLY rewrites only changed rows;
    # the refresh time is class_statistics.last_calculated.
    op.execute(STUDENT_STATS_LIVE)
    op.execute(
        "CREATE VIEW class_statistics_live AS "
        + CLASS_STATISTICS.format(source="student_attendance_stats_live")
    )
    op.execute(
        "CREATE MATERIALIZED VIEW student_attendance_stats AS "
        "SELECT * FROM student_attendance_stats_live"
    )
    op.execute(
        "CREATE UNIQUE INDEX uq_student_attendance_stats_student "
        "ON student_attendance_stats (student_id)"
    )
    op.execute(
        "CREATE INDEX ix_student_attendance_stats_rank "
        "ON student_attendance_stats (tenant_id, classroom_id, rank, student_id)"
    )
    # Built from the student snapshot (refreshed first), not by aggregating all records again.
    op.execute(
        "CREATE MATERIALIZED VIEW class_statistics AS "
        + CLASS_STATISTICS.format(source="student_attendance_stats")
    )
    op.execute(
        "CREATE UNIQUE INDEX uq_class_statistics_classroom ON class_statistics (classroom_id)"
    )


def downgrade() -> None:
    op.execute("DROP MATERIALIZED VIEW class_statistics")
    op.execute("DROP MATERIALIZED VIEW student_attendance_stats")
    op.execute("DROP VIEW class_statistics_live")
    op.execute("DROP VIEW student_attendance_stats_live")
    op.drop_index(
        "uq_attendance_student_date_period",
        table_name="attendance_records",
        postgresql_include=["status"],
    )
    op.drop_index("ix_attendance_tenant_classroom_date", table_name="attendance_records")
    op.drop_table("attendance_records")
    op.drop_index("ix_teacher_assignments_classroom", table_name="teacher_assignments")
    op.drop_table("teacher_assignments")
    op.drop_index("ix_students_tenant_classroom_name", table_name="students")
    op.drop_table("students")
    op.drop_table("classroom_subjects")
    op.drop_index(
        "ix_users_tenant_role_active", table_name="users", postgresql_where=sa.text("active")
    )
    op.drop_table("users")
    op.drop_table("subjects")
    op.drop_table("classrooms")
    op.drop_table("tenants")
    op.execute("DROP TYPE attendance_status")
    op.execute("DROP TYPE user_role")
