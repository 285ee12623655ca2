"""upload storage state: how the storage driver continues an upload (an S3 multipart upload's parts)

Revision ID: 0016
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN of a nullable column: SQLite does it without rebuilding the table.
    op.add_column("uploads", sa.Column("storage_state", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("storage_state")
