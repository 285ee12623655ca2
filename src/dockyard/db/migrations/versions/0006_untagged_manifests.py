"""manifests remember since when they have had no tag

Revision ID: 0006
Revises: 0009
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("manifests", sa.Column("untagged_at", sa.Float(), nullable=True))
    op.create_index("ix_manifests_untagged_at", "manifests", ["untagged_at"])
    # Manifests untagged today start their retention at the upgrade: nothing goes at the first collection.
    op.execute(
        sa.text(
            "UPDATE manifests SET untagged_at = :now "
            "WHERE NOT EXISTS (SELECT 1 FROM tags WHERE tags.manifest_id = manifests.id)"
        ).bindparams(now=time.time())
    )


def downgrade() -> None:
    op.drop_index("ix_manifests_untagged_at", table_name="manifests")
    op.drop_column("manifests", "untagged_at")
