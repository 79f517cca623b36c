"""an index for the sweep of pending e-mail deliveries

Revision ID: 0008
Revises: 0007
"""

from alembic import op
import sqlalchemy as sa


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_notification_deliveries_pending_email",
        "notification_deliveries",
        ["updated_at"],
        postgresql_where=sa.text("status = 'PENDING' AND channel = 'EMAIL'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_notification_deliveries_pending_email", table_name="notification_deliveries"
    )
