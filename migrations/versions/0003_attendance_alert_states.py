"""attendance alert states

Revision ID: 0003
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attendance_alert_states",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("student_id", sa.UUID(), nullable=False),
        sa.Column("standing", sa.String(length=10), server_default="OK", nullable=False),
        sa.Column("crossings", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["student_id"], ["students.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("student_id"),
        sa.CheckConstraint(
            "standing IN ('OK', 'WARNING', 'TASDIQ', 'MAHROOM')", name="ck_alert_states_standing"
        ),
    )


def downgrade() -> None:
    op.drop_table("attendance_alert_states")
