"""job queue, scan results, hidden findings, scan on push

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DIGEST = sa.String(length=200)


def upgrade() -> None:
    # A plain ADD COLUMN with a constant default: SQLite does it without rebuilding the table.
    op.add_column(
        "repositories", sa.Column("scan_on_push", sa.Boolean(), server_default=sa.true(), nullable=False)
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("payload", sa.Text(), server_default="{}", nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("run_after", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("kind", "key", name="uq_jobs_kind_key"),
    )
    op.create_index("ix_jobs_state_run_after", "jobs", ["state", "run_after"], unique=False)
    op.create_table(
        "image_scans",
        sa.Column("digest", DIGEST, nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("os_id", sa.String(length=64), nullable=True),
        sa.Column("os_version", sa.String(length=64), nullable=True),
        sa.Column("os_name", sa.String(length=255), nullable=True),
        sa.Column("os_codename", sa.String(length=64), nullable=True),
        sa.Column("os_like", sa.String(length=255), nullable=True),
        sa.Column("scanned_at", sa.Float(), nullable=True),
        sa.Column("evaluated_at", sa.Float(), nullable=True),
        sa.Column("evaluated_generation", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_image_scans")),
    )
    op.create_index(
        "ix_image_scans_evaluated_generation", "image_scans", ["evaluated_generation"], unique=False
    )
    op.create_table(
        "image_packages",
        sa.Column("image_digest", DIGEST, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ecosystem", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("source_name", sa.String(length=512), nullable=False),
        sa.Column("source_version", sa.String(length=255), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("layer_digest", DIGEST, nullable=False),
        sa.Column("purl", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["image_digest"],
            ["image_scans.digest"],
            name=op.f("fk_image_packages_image_digest_image_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_digest", "seq", name=op.f("pk_image_packages")),
    )
    op.create_table(
        "image_findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("image_digest", DIGEST, nullable=False),
        sa.Column("package_seq", sa.Integer(), nullable=False),
        sa.Column("vuln_id", sa.String(length=255), nullable=False),
        sa.Column("aliases", sa.Text(), server_default="[]", nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("installed_version", sa.String(length=255), nullable=False),
        sa.Column("fixed_version", sa.String(length=255), nullable=True),
        sa.Column("summary", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["image_digest"],
            ["image_scans.digest"],
            name=op.f("fk_image_findings_image_digest_image_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_findings")),
    )
    op.create_index(
        "ix_image_findings_image_digest", "image_findings", ["image_digest", "severity"], unique=False
    )
    op.create_table(
        "hidden_findings",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("image_digest", DIGEST, nullable=False),
        sa.Column("vuln_id", sa.String(length=255), nullable=False),
        sa.Column("package", sa.String(length=512), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("hidden_by", sa.String(length=64), nullable=False),
        sa.Column("hidden_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_hidden_findings_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "repository_id", "image_digest", "vuln_id", "package", name=op.f("pk_hidden_findings")
        ),
    )


def downgrade() -> None:
    op.drop_table("hidden_findings")
    op.drop_index("ix_image_findings_image_digest", table_name="image_findings")
    op.drop_table("image_findings")
    op.drop_table("image_packages")
    op.drop_index("ix_image_scans_evaluated_generation", table_name="image_scans")
    op.drop_table("image_scans")
    op.drop_index("ix_jobs_state_run_after", table_name="jobs")
    op.drop_table("jobs")
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("scan_on_push")
