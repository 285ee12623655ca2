"""A cluster without quorum: no member accepts writes, yet reads go on (on PostgreSQL with a multi-host URL).

A real standby is simulated with a role whose sessions are read-only by default: libpq's
target_session_attrs=read-write refuses such a server exactly as it refuses a hot standby.
"""

from __future__ import annotations

import itertools

import psycopg
import pytest
from sqlalchemy import text

from dockyard.db.engine import Database, DatabaseReadOnly, DatabaseUnavailable
from support import PostgresServer

pytestmark = pytest.mark.postgres
_roles = itertools.count()


def _urls(postgres_server: PostgresServer) -> tuple[str, str]:
    """(read-write URL, the same for a read-only role) over a fresh database with one table and row."""
    url = postgres_server.create_database()
    database = url.rsplit("/", 1)[1]
    role = f"standby_{next(_roles)}"
    with psycopg.connect(postgres_server.admin_conninfo, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
    conninfo = postgres_server.admin_conninfo.replace("dbname=postgres", f"dbname={database}")
    with psycopg.connect(conninfo) as db:
        db.execute("CREATE TABLE facts (v text)")
        db.execute("INSERT INTO facts VALUES ('kept')")
        db.execute(f"GRANT SELECT, INSERT ON facts TO {role}")
    port = postgres_server.port
    # Two hosts, the first one dead: the URL is the cluster's kind, and the dead one costs no time.
    hosts = f"host=127.0.0.1:1&host=127.0.0.1:{port}&target_session_attrs=read-write&connect_timeout=3"
    return (
        f"postgresql+psycopg://postgres@/{database}?{hosts}",
        f"postgresql+psycopg://{role}@/{database}?{hosts}",
    )


def test_reads_and_writes_with_a_writable_member(postgres_server: PostgresServer) -> None:
    writable, _ = _urls(postgres_server)
    db = Database(writable)
    try:
        with db.write() as conn:
            conn.execute(text("INSERT INTO facts VALUES ('new')"))
        with db.read() as conn:
            assert sorted(conn.execute(text("SELECT v FROM facts")).scalars()) == ["kept", "new"]
    finally:
        db.close()


def test_without_a_writable_member_reads_work_and_writes_say_why(postgres_server: PostgresServer) -> None:
    _, read_only = _urls(postgres_server)
    db = Database(read_only)
    try:
        with db.read() as conn:
            assert list(conn.execute(text("SELECT v FROM facts")).scalars()) == ["kept"]
        db.ping()
        for durable in (True, False):
            refused = pytest.raises(DatabaseReadOnly, match="read-only: the database has no quorum")
            with refused, db.write(durable):
                pytest.fail("a write must not start")
    finally:
        db.close()


def test_no_member_at_all_is_unavailable_not_read_only() -> None:
    db = Database(
        "postgresql+psycopg://x@/d?host=127.0.0.1:1&host=127.0.0.1:2&target_session_attrs=read-write"
    )
    try:
        with pytest.raises(DatabaseUnavailable) as raised, db.read():
            pass
        assert not isinstance(raised.value, DatabaseReadOnly)
        with pytest.raises(DatabaseUnavailable) as raised, db.write():
            pass
        assert not isinstance(raised.value, DatabaseReadOnly)
    finally:
        db.close()
