"""Totals for the metrics endpoint: each one aggregate query over an indexed or small table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from dockyard.db.schema import blobs, jobs, uploads


@dataclass(frozen=True)
class RegistryTotals:
    """What the store holds and what is waiting, across every replica."""

    blob_count: int
    blob_bytes: int
    uploads: int
    jobs_by_state: dict[str, int]


def registry_totals(conn: Connection) -> RegistryTotals:
    """Blob count and bytes, open upload sessions, and jobs per state."""
    row = conn.execute(select(func.count(), func.coalesce(func.sum(blobs.c.size), 0))).one()
    open_uploads: int = conn.execute(select(func.count()).select_from(uploads)).scalar_one()
    states: list[Any] = list(conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)))
    return RegistryTotals(
        blob_count=int(row[0]),
        blob_bytes=int(row[1]),
        uploads=open_uploads,
        jobs_by_state={str(row[0]): int(row[1]) for row in states},
    )
