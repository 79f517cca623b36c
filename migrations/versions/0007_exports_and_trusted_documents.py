"""exports of attendance, and the trusted documents' allow-list

Revision ID: 0007
Revises: 0006
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exports",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("requested_by", sa.UUID(), nullable=False),
        sa.Column("format", sa.Enum("CSV", "JSON", name="export_format"), nullable=False),
        sa.Column("date_from", sa.Date(), nullable=False),
        sa.Column("date_to", sa.Date(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("PENDING", "RUNNING", "READY", "FAILED", "EXPIRED", name="export_status"),
            nullable=False,
        ),
        sa.Column("object_key", sa.String(length=300), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("date_from <= date_to", name="ck_exports_range"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["requested_by"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("object_key"),
    )
    op.create_index(
        "ix_exports_requester_created",
        "exports",
        ["tenant_id", "requested_by", "created_at", "id"],
    )
    op.create_index(
        "ix_exports_ready_completed",
        "exports",
        ["completed_at"],
        postgresql_where=sa.text("status = 'READY'"),
    )
    op.create_table(
        "trusted_documents",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("operation_names", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("manifest", sa.String(length=200), nullable=False),
        sa.Column(
            "registered_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("sha256"),
    )


def downgrade() -> None:
    op.drop_table("trusted_documents")
    op.drop_index("ix_exports_ready_completed", table_name="exports")
    op.drop_index("ix_exports_requester_created", table_name="exports")
    op.drop_table("exports")
    op.execute("DROP TYPE export_status")
    op.execute("DROP TYPE export_format")
