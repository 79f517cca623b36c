"""school administration: accounts without passwords, roster imports, password resets

Revision ID: 0010
Revises: 0009
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

NEW_AUDIT_ACTIONS = (
    "CLASSROOM_CREATE",
    "STUDENT_CREATE",
    "STUDENT_MOVE",
    "TEACHER_ASSIGN",
    "THRESHOLDS_UPDATE",
    "ROSTER_IMPORT",
    "PASSWORD_RESET_REQUEST",
)
ROSTER_IMPORT_STATUSES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED")


def upgrade() -> None:
    op.alter_column("users", "password_hash", existing_type=sa.String(200), nullable=True)
    for action in NEW_AUDIT_ACTIONS:
        # A value added in a transaction may not be used by it: none of this migration uses them.
        op.execute(f"ALTER TYPE audit_action ADD VALUE IF NOT EXISTS '{action}'")
    status = postgresql.ENUM(*ROSTER_IMPORT_STATUSES, name="roster_import_status")
    status.create(op.get_bind())
    op.create_table(
        "roster_imports",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("requested_by", sa.UUID(), nullable=True),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("source", sa.LargeBinary(), nullable=True),
        sa.Column(
            "status",
            postgresql.ENUM(name="roster_import_status", create_type=False),
            nullable=False,
        ),
        sa.Column("total_rows", sa.Integer(), nullable=True),
        sa.Column("processed_rows", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unchanged", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["requested_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_roster_imports_tenant_created", "roster_imports", ["tenant_id", "created_at"]
    )
    op.create_table(
        "password_resets",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_password_resets_user", "password_resets", ["tenant_id", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_password_resets_user", table_name="password_resets")
    op.drop_table("password_resets")
    op.drop_index("ix_roster_imports_tenant_created", table_name="roster_imports")
    op.drop_table("roster_imports")
    op.execute("DROP TYPE roster_import_status")
    # PostgreSQL cannot drop an enum value. Accounts without a password get one no password
    # matches ('!' is no Argon2 hash), so none is lost and none opens.
    op.execute("UPDATE users SET password_hash = '!' WHERE password_hash IS NULL")
    op.alter_column("users", "password_hash", existing_type=sa.String(200), nullable=False)
