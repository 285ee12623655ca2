"""Queries for the replicas table and the database's own role. Each takes an open transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from dockyard.db.schema import replicas


@dataclass(frozen=True)
class ReplicaRow:
    """A replica as registered."""

    id: str
    address: str
    version: str
    started_at: float
    heartbeat_at: float


def beat(
    conn: Connection, replica_id: str, address: str, version: str, started_at: float, now: float
) -> None:
    """Register the replica, or record that it is still alive."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(replicas).values(
        id=replica_id, address=address, version=version, started_at=started_at, heartbeat_at=now
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[replicas.c.id],
            set_={"address": address, "version": version, "started_at": started_at, "heartbeat_at": now},
        )
    )


def forget_silent(conn: Connection, before: float) -> int:
    """Drop replicas whose last heartbeat is older than `before` (removed from the cluster)."""
    return int(conn.execute(delete(replicas).where(replicas.c.heartbeat_at < before)).rowcount)


def all_replicas(conn: Connection) -> list[ReplicaRow]:
    """Every registered replica, by id (a read transaction is fine)."""
    rows = conn.execute(select(replicas).order_by(replicas.c.id))
    return [ReplicaRow(**row._mapping) for row in rows]


def accepts_writes(conn: Connection) -> bool:
    """Whether this connection's server takes writes: a PostgreSQL primary not set read-only; SQLite yes."""
    if conn.dialect.name == "sqlite":
        return True
    row = conn.execute(
        text("SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS ro")
    ).one()
    return not row.standby and row.ro == "off"
