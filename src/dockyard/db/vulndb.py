"""Queries for the vulnerability database: advisories, the keys they are looked up by, and imports.

Each takes an open transaction. Parsing and comparing OSV records lives in dockyard.scanning.vulndb.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from dockyard.db.schema import advisories, advisory_keys, vulndb_imports


@dataclass(frozen=True)
class AdvisoryRow:
    """An advisory as stored: `record` is its OSV JSON, `keys` the (ecosystem, name) pairs to find it by."""

    id: str
    source: str
    modified: float | None
    published: float | None
    summary: str
    record: str
    keys: frozenset[tuple[str, str]]


def stored_records(conn: Connection, ids: Collection[str]) -> dict[str, tuple[str, str]]:
    """(source, record JSON) of the advisories among `ids` already stored, by id."""
    if not ids:
        return {}
    rows = conn.execute(
        select(advisories.c.id, advisories.c.source, advisories.c.record).where(advisories.c.id.in_(ids))
    )
    return {row.id: (row.source, row.record) for row in rows}


def upsert_advisories(conn: Connection, rows: Sequence[AdvisoryRow], existing: Collection[str]) -> None:
    """Insert the advisories not in `existing`, overwrite those that are, and replace their keys."""
    if not rows:
        return
    values = [
        {
            "id": r.id,
            "source": r.source,
            "modified": r.modified,
            "published": r.published,
            "withdrawn": False,
            "summary": r.summary,
            "record": r.record,
        }
        for r in rows
    ]
    new = [v for v in values if v["id"] not in existing]
    changed = [{**v, "key_id": v["id"]} for v in values if v["id"] in existing]
    if new:
        conn.execute(insert(advisories), new)
    if changed:
        conn.execute(
            update(advisories)
            .where(advisories.c.id == bindparam("key_id"))
            .values({c: bindparam(c) for c in ("source", "modified", "published", "summary", "record")}),
            changed,
        )
        conn.execute(delete(advisory_keys).where(advisory_keys.c.advisory_id.in_([v["id"] for v in changed])))
    keys = [{"ecosystem": e, "name": n, "advisory_id": r.id} for r in rows for e, n in sorted(r.keys)]
    if keys:
        conn.execute(insert(advisory_keys), keys)


def delete_advisories(conn: Connection, ids: Collection[str]) -> int:
    """Delete the advisories among `ids` (their keys go with them); returns how many there were."""
    if not ids:
        return 0
    conn.execute(delete(advisory_keys).where(advisory_keys.c.advisory_id.in_(ids)))
    return conn.execute(delete(advisories).where(advisories.c.id.in_(ids))).rowcount


def records_for(conn: Connection, ecosystem: str, name: str) -> list[str]:
    """The OSV JSON of every advisory keyed under (ecosystem, name), in id order."""
    query = (
        select(advisories.c.record)
        .join(advisory_keys, advisory_keys.c.advisory_id == advisories.c.id)
        .where(advisory_keys.c.ecosystem == ecosystem, advisory_keys.c.name == name)
        .order_by(advisories.c.id)
    )
    return list(conn.execute(query).scalars())


def record_import(conn: Connection, source: str, started_at: float, finished_at: float, records: int) -> None:
    """Remember one finished import."""
    conn.execute(
        insert(vulndb_imports).values(
            source=source, started_at=started_at, finished_at=finished_at, records=records
        )
    )


def counts_by_source(conn: Connection) -> dict[str, int]:
    """How many advisories each source holds."""
    rows = conn.execute(
        select(advisories.c.source, func.count().label("records")).group_by(advisories.c.source)
    )
    return {row.source: row.records for row in rows}


def last_import_at(conn: Connection) -> float | None:
    """When the newest import finished, or None before the first."""
    value: float | None = conn.execute(select(func.max(vulndb_imports.c.finished_at))).scalar()
    return value
