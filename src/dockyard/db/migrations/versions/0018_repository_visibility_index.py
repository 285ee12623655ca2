"""an index of repositories by visibility and name, for listings filtered by visibility in the database

Revision ID: 0018
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_repositories_visibility_name", "repositories", ["visibility", "name"])


def downgrade() -> None:
    op.drop_index("ix_repositories_visibility_name", table_name="repositories")
