"""Transactions: a write that need not wait for the disk, and durability restored after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.engine import Connection

from dockyard.db import content as q
from dockyard.db import repositories as rq
from dockyard.db.engine import Database
from dockyard.db.schema import repositories


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database with one pooled connection, so every transaction reuses it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'dockyard.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    db = Database(url, pool_size=1)
    db.migrate()
    try:
        yield db
    finally:
        db.close()


def _durability(db: Database, conn: Connection) -> str:
    query = "PRAGMA synchronous" if db.is_sqlite else "SHOW synchronous_commit"
    return str(conn.execute(text(query)).scalar_one())


# SQLite: 2 is FULL (fsync at every commit), 1 is NORMAL; PostgreSQL: on / off.
def _full(db: Database) -> str:
    return "2" if db.is_sqlite else "on"


def _relaxed(db: Database) -> str:
    return "1" if db.is_sqlite else "off"


def test_a_relaxed_write_commits_and_durability_comes_back(database: Database) -> None:
    with database.write(durable=False) as conn:
        assert _durability(database, conn) == _relaxed(database)
        q.ensure_repository(conn, "relaxed/write")
    with database.read() as conn:
        assert q.repository_id(conn, "relaxed/write") is not None
        assert _durability(database, conn) == _full(database)
    with database.write() as conn:
        assert _durability(database, conn) == _full(database)


def test_a_failed_relaxed_write_rolls_back_and_durability_comes_back(database: Database) -> None:
    with pytest.raises(RuntimeError), database.write(durable=False) as conn:
        q.ensure_repository(conn, "never/committed")
        raise RuntimeError("abandon the transaction")
    with database.write() as conn:
        assert q.repository_id(conn, "never/committed") is None
        assert _durability(database, conn) == _full(database)


def test_quick_rows_see_every_committed_write_at_once(database: Database) -> None:
    statement = select(repositories.c.id, repositories.c.name).where(repositories.c.name == bindparam("name"))
    assert database.quick_rows(statement, {"name": "quick/read"}) == []
    with database.write() as conn:
        repo_id = q.ensure_repository(conn, "quick/read")
    rows = database.quick_rows(statement, {"name": "quick/read"})
    assert [(row.id, row.name) for row in rows] == [(repo_id, "quick/read")]
    with database.write() as conn:
        rq.delete_repository(conn, repo_id)
    assert database.quick_rows(statement, {"name": "quick/read"}) == []


def test_quick_rows_refuse_columns_that_need_conversion(tmp_path: Path) -> None:
    # SQLite only: PostgreSQL reads go through SQLAlchemy, which converts every type.
    database = Database(f"sqlite:///{tmp_path / 'dockyard.db'}")
    database.migrate()
    statement = select(repositories.c.scan_on_push).where(repositories.c.name == bindparam("name"))
    try:
        with pytest.raises(ValueError, match="needs conversion"):
            database.quick_rows(statement, {"name": "any"})
    finally:
        database.close()
