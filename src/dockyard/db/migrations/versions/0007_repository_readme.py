"""repository README (Markdown) for the web UI; sessions signed in with an access token

Revision ID: 0007
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN with a constant default: SQLite does it without rebuilding the table.
    op.add_column("repositories", sa.Column("readme", sa.Text(), server_default="", nullable=False))
    op.add_column("sessions", sa.Column("access_token_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("sessions", "access_token_id")
    op.drop_column("repositories", "readme")
