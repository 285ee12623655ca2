"""Revision 0002 upgrades a registry made before access control without losing anything."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from dockyard.db.engine import MIGRATIONS, Database


def test_existing_repositories_become_private_and_keep_their_content(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.commit()
    with db.write() as conn:
        conn.execute(text("INSERT INTO repositories (name, created_at) VALUES ('old/repo', 1.0)"))
        conn.execute(
            text("INSERT INTO blobs (digest, size, created_at, linked_at) VALUES ('sha256:aa', 1, 1, 1)")
        )
        conn.execute(
            text(
                "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (1, 'sha256:aa', 1)"
            )
        )
    db.migrate()
    with db.read() as conn:
        row = conn.execute(text("SELECT name, visibility, description FROM repositories")).one()
        links = conn.execute(text("SELECT count(*) FROM repository_blobs")).scalar_one()
        tables = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    db.close()
    assert tuple(row) == ("old/repo", "private", "")
    assert links == 1
    assert {
        "accounts",
        "teams",
        "access_tokens",
        "refresh_tokens",
        "audit_events",
        "login_failures",
    } <= tables
