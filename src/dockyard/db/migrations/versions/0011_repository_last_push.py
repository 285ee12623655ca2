"""repositories.last_pushed_at, for listing repositories by last push

Revision ID: 0011
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN with a constant default: SQLite does it without rebuilding the table.
    op.add_column("repositories", sa.Column("last_pushed_at", sa.Float(), server_default="0", nullable=False))
    op.create_index("ix_repositories_last_pushed_at", "repositories", ["last_pushed_at", "name"])
    # Existing repositories: their newest tag's time, the best record of a push there is.
    op.execute(
        "UPDATE repositories SET last_pushed_at = COALESCE("
        "(SELECT MAX(tags.updated_at) FROM tags WHERE tags.repository_id = repositories.id), 0)"
    )


def downgrade() -> None:
    op.drop_index("ix_repositories_last_pushed_at", table_name="repositories")
    op.drop_column("repositories", "last_pushed_at")
