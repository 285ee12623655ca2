"""Queries for the job queue. Each takes an open write transaction unless it says otherwise."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import Connection, Row

from dockyard.db.schema import jobs

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"


@dataclass(frozen=True)
class JobRow:
    """A job as stored."""

    id: int
    kind: str
    key: str
    payload: str
    state: str
    attempts: int
    run_after: float
    lease_until: float | None
    worker: str | None
    error: str | None
    created_at: float
    updated_at: float


def _row(row: Row[Any]) -> JobRow:
    return JobRow(**row._mapping)


def job_by_key(conn: Connection, kind: str, key: str) -> JobRow | None:
    """The job of this kind and key, whatever its state."""
    row = conn.execute(select(jobs).where(jobs.c.kind == kind, jobs.c.key == key)).first()
    return _row(row) if row is not None else None


def insert_job(conn: Connection, kind: str, key: str, payload: str, run_after: float, now: float) -> None:
    """A new queued job."""
    conn.execute(
        insert(jobs).values(
            kind=kind,
            key=key,
            payload=payload,
            state=QUEUED,
            attempts=0,
            run_after=run_after,
            created_at=now,
            updated_at=now,
        )
    )


def rearm_job(conn: Connection, job_id: int, payload: str, run_after: float, now: float) -> None:
    """Queue a finished or failed job again, as new."""
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            payload=payload,
            state=QUEUED,
            attempts=0,
            run_after=run_after,
            lease_until=None,
            worker=None,
            error=None,
            updated_at=now,
        )
    )


def due_job(conn: Connection, kinds: Collection[str], now: float, *, lock: bool = True) -> JobRow | None:
    """The oldest job of `kinds` that may run now: queued and due, or running with an expired lease.

    On PostgreSQL the row is locked (skipping rows other replicas hold), so two workers never take the
    same job.
    """
    stmt = (
        select(jobs)
        .where(
            jobs.c.kind.in_(list(kinds)),
            or_(
                and_(jobs.c.state == QUEUED, jobs.c.run_after <= now),
                and_(jobs.c.state == RUNNING, jobs.c.lease_until < now),
            ),
        )
        .order_by(jobs.c.run_after, jobs.c.id)
        .limit(1)
    )
    if lock and conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update(skip_locked=True)
    row = conn.execute(stmt).first()
    return _row(row) if row is not None else None


def start_job(conn: Connection, job_id: int, worker: str, lease_until: float, now: float) -> None:
    """Mark a job running under `worker` until `lease_until`."""
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            state=RUNNING,
            worker=worker,
            lease_until=lease_until,
            attempts=jobs.c.attempts + 1,
            updated_at=now,
        )
    )


def renew_job(conn: Connection, job_id: int, worker: str, lease_until: float) -> bool:
    """Extend a running job's lease, if `worker` still holds it."""
    result = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.worker == worker, jobs.c.state == RUNNING)
        .values(lease_until=lease_until)
    )
    return result.rowcount == 1


def finish_job(
    conn: Connection,
    job_id: int,
    worker: str,
    state: str,
    error: str | None,
    run_after: float | None,
    now: float,
) -> bool:
    """Record a job's outcome, if `worker` still holds it (a lost lease means another worker took over)."""
    values: dict[str, object] = {"state": state, "error": error, "lease_until": None, "updated_at": now}
    if run_after is not None:
        values["run_after"] = run_after
    result = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.worker == worker, jobs.c.state == RUNNING)
        .values(**values)
    )
    return result.rowcount == 1


def jobs_of_kind(conn: Connection, kind: str, keys: Collection[str]) -> dict[str, JobRow]:
    """The jobs of `kind` with those keys, by key (read transaction is fine)."""
    if not keys:
        return {}
    rows = conn.execute(select(jobs).where(jobs.c.kind == kind, jobs.c.key.in_(list(keys))))
    return {row.key: _row(row) for row in rows}


def delete_finished(conn: Connection, before: float) -> int:
    """Forget done and failed jobs last updated before `before`."""
    result = conn.execute(delete(jobs).where(jobs.c.state.in_([DONE, FAILED]), jobs.c.updated_at < before))
    return int(result.rowcount)


def latest_of_kind(conn: Connection, kind: str) -> JobRow | None:
    """The most recently updated job of `kind`."""
    row = conn.execute(
        select(jobs).where(jobs.c.kind == kind).order_by(jobs.c.updated_at.desc(), jobs.c.id.desc()).limit(1)
    ).first()
    return _row(row) if row is not None else None
