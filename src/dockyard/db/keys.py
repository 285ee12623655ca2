"""Queries for the token signing keys. Each takes an open transaction; writers call `lock_key_set` first."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, or_, select, text, update
from sqlalchemy.engine import Connection

from dockyard.db.schema import signing_keys

# Any constant works: it only has to be the same in every replica.
_KEY_SET_LOCK_ID = 0x6B657973


@dataclass(frozen=True)
class KeyRow:
    """A stored signing key."""

    kid: str
    private_key: bytes
    created_at: float
    retired_at: float | None


def lock_key_set(conn: Connection) -> None:
    """Serialise changes to the key set until the transaction ends, so replicas starting together make
    one first key. (SQLite's write transactions already hold the database's one write lock.)"""
    if conn.dialect.name != "sqlite":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _KEY_SET_LOCK_ID})


def live_keys(conn: Connection, now: float) -> list[KeyRow]:
    """The signing key and every retired key still verifying, newest first."""
    rows = conn.execute(
        select(
            signing_keys.c.kid,
            signing_keys.c.private_key,
            signing_keys.c.created_at,
            signing_keys.c.retired_at,
        )
        .where(or_(signing_keys.c.verify_until.is_(None), signing_keys.c.verify_until >= now))
        .order_by(signing_keys.c.created_at.desc(), signing_keys.c.kid)
    )
    return [KeyRow(r.kid, bytes(r.private_key), r.created_at, r.retired_at) for r in rows]


def current_kid(conn: Connection) -> str | None:
    """The id of the signing key, if there is one."""
    return conn.execute(
        select(signing_keys.c.kid)
        .where(signing_keys.c.retired_at.is_(None))
        .order_by(signing_keys.c.created_at.desc(), signing_keys.c.kid)
        .limit(1)
    ).scalar_one_or_none()


def add_key(conn: Connection, kid: str, private_key: bytes, now: float, verify_until: float | None) -> None:
    """Store a key: the signing key (`verify_until` None) or an already retired one (imported)."""
    conn.execute(
        insert(signing_keys).values(
            kid=kid,
            private_key=private_key,
            created_at=now,
            retired_at=None if verify_until is None else now,
            verify_until=verify_until,
        )
    )


def retire_current(conn: Connection, now: float, verify_until: float) -> None:
    """The signing key stops signing and keeps verifying until `verify_until`."""
    conn.execute(
        update(signing_keys)
        .where(signing_keys.c.retired_at.is_(None))
        .values(retired_at=now, verify_until=verify_until)
    )


def delete_expired(conn: Connection, now: float) -> list[str]:
    """Remove retired keys past their verification window; their ids."""
    gone = signing_keys.c.verify_until < now
    kids: list[str] = list(conn.execute(select(signing_keys.c.kid).where(gone)).scalars())
    conn.execute(delete(signing_keys).where(gone))
    return kids


def delete_retired(conn: Connection) -> list[str]:
    """Remove every key but the signing one; their ids."""
    retired = signing_keys.c.retired_at.is_not(None)
    kids: list[str] = list(conn.execute(select(signing_keys.c.kid).where(retired)).scalars())
    conn.execute(delete(signing_keys).where(retired))
    return kids
