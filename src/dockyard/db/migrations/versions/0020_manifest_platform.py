"""the platform (os/architecture[/variant]) of an image manifest, read from its config at push, for the tags
page (one query per page, no blob read per row)

Revision ID: 0020
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Images stored before show no platform until pushed again (their configs are blobs, out of reach
    # of a migration).
    op.add_column("manifests", sa.Column("platform", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("manifests", "platform")
