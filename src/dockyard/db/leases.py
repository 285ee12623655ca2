"""Queries for named leases (compare-and-set on one row per name). Each takes an open write transaction."""

from __future__ import annotations

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from dockyard.db.schema import leases


def holder_until(conn: Connection, name: str) -> tuple[str, float] | None:
    """Who holds the lease and until when, if it was ever taken (a read transaction is fine)."""
    row = conn.execute(select(leases.c.holder, leases.c.until).where(leases.c.name == name)).first()
    return None if row is None else (row.holder, row.until)


def take(conn: Connection, name: str, holder: str, now: float, until: float) -> bool:
    """Take the lease if nobody holds it (never taken, or expired); True when `holder` got it."""
    taken = conn.execute(
        update(leases)
        .where(leases.c.name == name, leases.c.until < now)
        .values(holder=holder, until=until, acquired_at=now)
    )
    if taken.rowcount == 1:
        return True
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    # RETURNING tells whether the row went in (psycopg reports no row count for this INSERT).
    inserted = conn.execute(
        dialect.insert(leases)
        .values(name=name, holder=holder, until=until, acquired_at=now)
        .on_conflict_do_nothing(index_elements=[leases.c.name])
        .returning(leases.c.name)
    )
    return inserted.first() is not None


def extend(conn: Connection, name: str, holder: str, until: float) -> bool:
    """Hold the lease at least until `until`, if `holder` still has it; False when it was lost."""
    later = case((leases.c.until < until, until), else_=leases.c.until)
    result = conn.execute(
        update(leases).where(leases.c.name == name, leases.c.holder == holder).values(until=later)
    )
    return result.rowcount == 1


def release(conn: Connection, name: str, holder: str) -> bool:
    """Give the lease up at once, if `holder` has it."""
    return conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder)).rowcount == 1
