"""Statistics collected as they happen, for the dashboard: pushes and pulls per repository and day, and a
daily snapshot of each repository's vulnerability counts.

A push is counted in the push's own transaction (a push hook). Pulls are the hot path: each process counts
them in memory and adds its counts to the database now and then (`PullCounter.flush`); additions from
several replicas add up. The snapshot is taken by one replica at a time under a lease (app.py).
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.engine import Connection

from dockyard.db import activity as q
from dockyard.db.engine import Database

log = logging.getLogger(__name__)

DAY_SECONDS = 86400
# Distinct (repository, day) keys one process holds before it stops adding new ones until the next flush:
# a bound on memory whatever the traffic (counts of keys already held still grow).
MAX_PENDING_KEYS = 100_000


def day_of(when: float) -> int:
    """The UTC day (days since the epoch) of a time."""
    return int(when // DAY_SECONDS)


def count_push(conn: Connection, repo_id: int, _name: str, _digest: str, _media_type: str) -> None:
    """A push hook: count the manifest push in the push's own transaction."""
    q.add_push(conn, repo_id, day_of(time.time()))


class PullCounter:
    """Manifest pulls counted in this process's memory, by repository name and day, until flushed."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def pulled(self, name: str) -> None:
        """Count one pull of a manifest of the repository (cheap: no I/O)."""
        key = (name, day_of(time.time()))
        with self._lock:
            if key in self._counts:
                self._counts[key] += 1
            elif len(self._counts) < MAX_PENDING_KEYS:
                self._counts[key] = 1

    def pending(self) -> int:
        """Pulls counted and not flushed yet."""
        with self._lock:
            return sum(self._counts.values())

    def flush(self, db: Database) -> int:
        """Add the counts to the database; they are kept for the next flush if that fails. Returns how many
        pulls were written."""
        with self._lock:
            counts, self._counts = self._counts, {}
        if not counts:
            return 0
        try:
            with db.write(durable=False) as conn:
                q.add_pulls(conn, counts)
        except Exception:
            with self._lock:
                for key, count in counts.items():
                    self._counts[key] = self._counts.get(key, 0) + count
            raise
        return sum(counts.values())


def take_vulnerability_snapshot(db: Database, now: float | None = None) -> int:
    """Record today's visible findings by severity of every repository (replacing an earlier snapshot of
    the same day). Returns how many repositories have findings."""
    day = day_of(now if now is not None else time.time())
    with db.write() as conn:
        counts = q.current_severity_counts(conn)
        q.replace_snapshot(conn, day, counts)
    return sum(1 for by in counts.values() if any(by.values()))
