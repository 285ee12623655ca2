"""The PostgreSQL a Dockyard replica runs on for the benchmark's PostgreSQL column.

The throwaway server the tests use (tests/support/postgres.py: initdb in a temp dir, listening on a loopback
port, stopped and removed at the end), but with fsync on: the column measures what the database really costs.
"""

from __future__ import annotations

import psycopg
from tests.support.postgres import PostgresServer, postgres_bindir

__all__ = [
    "DATABASES",
    "POSTGRES",
    "SQLITE",
    "PostgresServer",
    "parse_databases",
    "postgres_installed",
    "postmaster_pid",
    "server_version",
    "start_postgres",
]

SQLITE, POSTGRES = "sqlite", "postgres"
DATABASES = (SQLITE, POSTGRES)


def postgres_installed() -> bool:
    """PostgreSQL's server binaries (Debian's `postgresql` package) are on this machine."""
    try:
        postgres_bindir()
    except RuntimeError:
        return False
    return True


def parse_databases(value: str) -> list[str]:
    """`sqlite,postgres` into a list; SQLite is the baseline every workload runs on, so it must be there."""
    chosen = [item.strip() for item in value.split(",") if item.strip()]
    unknown = sorted(set(chosen) - set(DATABASES))
    if unknown:
        raise ValueError(f"unknown database {', '.join(unknown)}: choose from {', '.join(DATABASES)}")
    if SQLITE not in chosen:
        raise ValueError("sqlite is the baseline every workload runs on: include it")
    return [name for name in DATABASES if name in chosen]


def start_postgres() -> PostgresServer:
    """A fresh PostgreSQL with fsync on; the caller stops it (which also deletes its files)."""
    server = PostgresServer(fsync=True)
    server.start()
    return server


def postmaster_pid(server: PostgresServer) -> int:
    """The server's main process: its tree (backends, WAL writer, checkpointer) is the database's CPU."""
    return int((server.data_dir / "postmaster.pid").read_text().splitlines()[0])


def server_version(server: PostgresServer) -> str:
    """The server's version string, for the report."""
    with psycopg.connect(server.admin_conninfo) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0]}" if row else "PostgreSQL"
