"""The job queue: enqueue by (kind, key), lease the oldest due job, record how it ended.

A job is one row per (kind, key), so asking twice for the same work while it is queued or running queues it
once. A worker leases a job for a while; if its replica dies, the lease expires and another worker takes the
job over. Workers only record an outcome while they still hold the lease.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection

from dockyard.db import jobs as q
from dockyard.db.engine import Database

__all__ = ["DONE", "FAILED", "QUEUED", "RUNNING", "Job", "JobQueue"]

QUEUED, RUNNING, DONE, FAILED = q.QUEUED, q.RUNNING, q.DONE, q.FAILED


@dataclass(frozen=True)
class Job:
    """A leased job: what to do (`kind`, `key`, `payload`), by whom, and which attempt this is."""

    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    attempts: int
    worker: str


class JobQueue:
    """Jobs in the metadata database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def enqueue(
        self,
        kind: str,
        key: str,
        payload: dict[str, Any] | None = None,
        *,
        run_after: float | None = None,
        rearm: bool = True,
        conn: Connection | None = None,
    ) -> bool:
        """Queue job (kind, key); False if it is already queued or running.

        A done or failed job with the same key is queued again only when `rearm` (rearm=False gives "at most
        once per key", for per-interval work scheduled by every replica). With `conn`, the job is queued in
        the caller's transaction and commits or rolls back with it.
        """
        if conn is None:
            with self.db.write() as own:
                return self._enqueue(own, kind, key, payload, run_after, rearm)
        return self._enqueue(conn, kind, key, payload, run_after, rearm)

    @staticmethod
    def _enqueue(
        conn: Connection,
        kind: str,
        key: str,
        payload: dict[str, Any] | None,
        run_after: float | None,
        rearm: bool,
    ) -> bool:
        now = time.time()
        text = json.dumps(payload or {}, sort_keys=True)
        when = now if run_after is None else run_after
        existing = q.job_by_key(conn, kind, key)
        if existing is None:
            q.insert_job(conn, kind, key, text, when, now)
            return True
        if existing.state in (QUEUED, RUNNING) or not rearm:
            return False
        q.rearm_job(conn, existing.id, text, when, now)
        return True

    def lease(self, kinds: Collection[str], worker: str, lease_seconds: float) -> Job | None:
        """Take the oldest due job of `kinds` for `lease_seconds`, or None when there is none."""
        now = time.time()
        with self.db.read() as conn:
            # Idle runners poll often: look without taking SQLite's write lock first.
            if q.due_job(conn, kinds, now, lock=False) is None:
                return None
        with self.db.write() as conn:
            row = q.due_job(conn, kinds, now)
            if row is None:
                return None
            q.start_job(conn, row.id, worker, now + lease_seconds, now)
        return Job(row.id, row.kind, row.key, json.loads(row.payload), row.attempts + 1, worker)

    def renew(self, job: Job, lease_seconds: float) -> bool:
        """Keep a running job's lease for `lease_seconds` more; False if another worker took it over."""
        with self.db.write(durable=False) as conn:
            return q.renew_job(conn, job.id, job.worker, time.time() + lease_seconds)

    def complete(self, job: Job) -> bool:
        """The job succeeded; False if its lease had been lost to another worker."""
        with self.db.write() as conn:
            return q.finish_job(conn, job.id, job.worker, DONE, None, None, time.time())

    def fail(self, job: Job, error: str, retry_after_seconds: float | None) -> bool:
        """The job failed: queue it again after `retry_after_seconds`, or give up (state failed) with None."""
        now = time.time()
        with self.db.write() as conn:
            if retry_after_seconds is None:
                return q.finish_job(conn, job.id, job.worker, FAILED, error, None, now)
            return q.finish_job(conn, job.id, job.worker, QUEUED, error, now + retry_after_seconds, now)

    def state(self, kind: str, keys: Collection[str]) -> dict[str, tuple[str, str | None]]:
        """(state, last error) of the jobs of `kind` with those keys, by key."""
        with self.db.read() as conn:
            rows = q.jobs_of_kind(conn, kind, keys)
        return {key: (row.state, row.error) for key, row in rows.items()}

    def latest(self, kind: str) -> tuple[str, str | None, float] | None:
        """(state, last error, when it last changed) of the most recent job of `kind`."""
        with self.db.read() as conn:
            row = q.latest_of_kind(conn, kind)
        return None if row is None else (row.state, row.error, row.updated_at)

    def prune(self, older_than: timedelta) -> int:
        """Forget done and failed jobs that ended more than `older_than` ago."""
        with self.db.write() as conn:
            return q.delete_finished(conn, time.time() - older_than.total_seconds())
