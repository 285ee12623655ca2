"""Named leases in the database, and periodic work that runs once per cluster under one.

Every replica tries to take a task's lease now and then; the one that gets it runs the task, and keeps the
lease for the task's interval, so the others find it held and skip. A replica that dies lets its lease
expire. Work that outlasts its lease renews it while it runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from starlette.concurrency import run_in_threadpool

from dockyard.db import leases as q
from dockyard.db.engine import Database, DatabaseUnavailable

__all__ = ["Leases", "PeriodicTask", "renewing", "worker_name"]

log = logging.getLogger(__name__)

# Unique per process even where containers share host names and process ids.
_PROCESS_TAG = uuid.uuid4().hex[:8]


def worker_name() -> str:
    """This process's name in leases: host, process id and a random tag."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{_PROCESS_TAG}"


class Leases:
    """Takes, extends and releases named leases for one holder (this process by default)."""

    def __init__(self, db: Database, holder: str | None = None) -> None:
        self.db = db
        self.holder = holder or worker_name()

    def take(self, name: str, seconds: float) -> bool:
        """Take lease `name` for `seconds` if nobody holds it; True when this holder got it."""
        now = time.time()
        with self.db.read() as conn:
            # Replicas poll: look before asking for SQLite's write lock.
            found = q.holder_until(conn, name)
        if found is not None and found[1] >= now:
            return False
        with self.db.write(durable=False) as conn:
            return q.take(conn, name, self.holder, now, now + seconds)

    def extend(self, name: str, seconds: float) -> bool:
        """Hold lease `name` at least `seconds` from now; False if it was lost to another holder."""
        with self.db.write(durable=False) as conn:
            return q.extend(conn, name, self.holder, time.time() + seconds)

    def release(self, name: str) -> bool:
        """Give lease `name` up now, if this holder has it."""
        with self.db.write(durable=False) as conn:
            return q.release(conn, name, self.holder)


@contextmanager
def renewing(renew: Callable[[], object], every: float) -> Iterator[None]:
    """Call `renew` every `every` seconds in a thread while the block runs (a lease kept alive)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                renew()
            except DatabaseUnavailable as exc:
                log.warning("renewing a lease waits for the database: %s", exc)
            except Exception:
                log.exception("renewing a lease failed; trying again in %.0f s", every)

    thread = threading.Thread(target=loop, name="lease-renewal", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class PeriodicTask:
    """`work` run every `interval` seconds by one replica of the cluster, under lease `name`."""

    def __init__(
        self,
        leases: Leases,
        name: str,
        interval: float,
        work: Callable[[], object],
        *,
        poll_seconds: float | None = None,
        renew_seconds: float = 30.0,
    ) -> None:
        self.leases = leases
        self.name = name
        self.interval = interval
        self.work = work
        self.poll_seconds = poll_seconds if poll_seconds is not None else min(interval, 60.0)
        self.renew_seconds = renew_seconds

    def run_if_due(self) -> bool:
        """Run the work if this replica takes the lease (nobody ran it within the interval); True if ran."""
        if not self.leases.take(self.name, self.interval):
            return False
        # Kept at least three renewals ahead while running, so a long run is not started twice.
        with renewing(lambda: self.leases.extend(self.name, self.renew_seconds * 3), self.renew_seconds):
            self.work()
        return True

    async def run(self) -> None:
        """Try every `poll_seconds` until cancelled; failures are logged and retried next interval."""
        while True:
            try:
                await run_in_threadpool(self.run_if_due)
            except DatabaseUnavailable as exc:
                # Without a quorum nothing can be leased: wait for the database quietly.
                log.warning("periodic task %s waits for the database: %s", self.name, exc)
            except Exception:
                log.exception("periodic task %s failed; retrying in %.0f s", self.name, self.interval)
            await asyncio.sleep(self.poll_seconds)
