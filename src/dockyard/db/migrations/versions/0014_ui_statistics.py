"""who pushed each tag; daily pushes and pulls per repository; daily vulnerability snapshots; system settings

Revision ID: 0014
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN of a nullable column: SQLite does it without rebuilding the table.
    op.add_column("tags", sa.Column("pushed_by", sa.String(length=64), nullable=True))
    op.create_table(
        "daily_activity",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("pushes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("pulls", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_daily_activity_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "day", name=op.f("pk_daily_activity")),
    )
    op.create_index("ix_daily_activity_day", "daily_activity", ["day"])
    op.create_table(
        "vulnerability_snapshots",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("critical", sa.Integer(), server_default="0", nullable=False),
        sa.Column("high", sa.Integer(), server_default="0", nullable=False),
        sa.Column("medium", sa.Integer(), server_default="0", nullable=False),
        sa.Column("low", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unknown", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_vulnerability_snapshots_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "day", name=op.f("pk_vulnerability_snapshots")),
    )
    op.create_index("ix_vulnerability_snapshots_day", "vulnerability_snapshots", ["day"])
    op.create_table(
        "system_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_system_settings")),
    )


def downgrade() -> None:
    op.drop_table("system_settings")
    op.drop_index("ix_vulnerability_snapshots_day", table_name="vulnerability_snapshots")
    op.drop_table("vulnerability_snapshots")
    op.drop_index("ix_daily_activity_day", table_name="daily_activity")
    op.drop_table("daily_activity")
    with op.batch_alter_table("tags") as batch:
        batch.drop_column("pushed_by")
