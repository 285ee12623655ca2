"""Migrations: a fresh database reaches the newest revision, again is a no-op, replicas may race."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from dockyard.db.engine import Database
from dockyard.db.schema import metadata
from support import PostgresServer


def _head(db: Database) -> str:
    with db.read() as conn:
        return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


def _url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'dockyard.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_fresh_database_gets_every_table(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = Database(_url(backend, tmp_path, request))
    try:
        db.migrate()
        head = _head(db)
        with db.read() as conn:
            tables = set(inspect(conn).get_table_names())
        assert set(metadata.tables) <= tables
        db.migrate()
        assert _head(db) == head
        db.ping()
    finally:
        db.close()


@pytest.mark.postgres
def test_replicas_migrating_at_once(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    databases = [Database(url) for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(databases))

    def migrate(db: Database) -> None:
        start.wait()
        try:
            db.migrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert len({_head(db) for db in databases}) == 1
    finally:
        for db in databases:
            db.close()
