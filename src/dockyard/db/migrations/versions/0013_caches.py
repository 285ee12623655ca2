"""content caches and who uses which

Revision ID: 0013
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "caches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("ca_pem", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("healthy", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("checked_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("stats", sa.Text(), server_default="{}", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_caches")),
        sa.UniqueConstraint("name", name=op.f("uq_caches_name")),
    )
    op.create_table(
        "account_caches",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("cache_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_caches_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["cache_id"], ["caches.id"], name=op.f("fk_account_caches_cache_id_caches"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_caches")),
    )
    op.create_table(
        "team_caches",
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("cache_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_team_caches_team_id_teams"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["cache_id"], ["caches.id"], name=op.f("fk_team_caches_cache_id_caches"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_team_caches")),
    )


def downgrade() -> None:
    op.drop_table("team_caches")
    op.drop_table("account_caches")
    op.drop_table("caches")
