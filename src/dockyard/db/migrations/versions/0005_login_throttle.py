"""last sign-in of each account; login failures found by age for pruning

Revision ID: 0005
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN without a default: SQLite does it without rebuilding the table.
    op.add_column("accounts", sa.Column("last_login_at", sa.Float(), nullable=True))
    op.create_index("ix_login_failures_last_failure_at", "login_failures", ["last_failure_at"])


def downgrade() -> None:
    op.drop_index("ix_login_failures_last_failure_at", table_name="login_failures")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("last_login_at")
