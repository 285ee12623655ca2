"""Runs leased jobs in threads, for as long as the application lives.

Handlers are plain functions of a `Job`, registered by kind. A handler that raises gets its job retried with a
growing delay, up to `max_attempts`; a handler that wants to give up for good raises `GiveUp`. The job's lease
is renewed while its handler runs, so a long scan is not taken over by another worker; a worker that dies
stops renewing, and the job is taken over once the lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from starlette.concurrency import run_in_threadpool

from dockyard.db.engine import DatabaseUnavailable
from dockyard.jobs.leases import renewing, worker_name
from dockyard.jobs.queue import Job, JobQueue
from dockyard.observability import metrics

__all__ = ["GiveUp", "JobRunner", "worker_name"]

log = logging.getLogger(__name__)

Handler = Callable[[Job], None]


class GiveUp(Exception):
    """Raised by a handler whose job can never succeed: it is marked failed with this message."""


class JobRunner:
    """Leases jobs of the registered kinds and runs up to `concurrency` at once."""

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        *,
        concurrency: int = 1,
        poll_seconds: float = 2.0,
        lease_seconds: float = 120.0,
        max_attempts: int = 3,
        idle: Callable[[], object] | None = None,
    ) -> None:
        self.queue = queue
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.idle = idle
        self.worker = worker_name()

    def run_one(self) -> bool:
        """Lease and run one due job; False when none was due."""
        job = self.queue.lease(self.handlers.keys(), self.worker, self.lease_seconds)
        if job is None:
            return False
        started = time.monotonic()
        try:
            with renewing(lambda: self.queue.renew(job, self.lease_seconds), self.lease_seconds / 3):
                self.handlers[job.kind](job)
        except GiveUp as exc:
            metrics.job_finished(job.kind, time.monotonic() - started, ok=False)
            self.queue.fail(job, str(exc), None)
        except Exception as exc:
            metrics.job_finished(job.kind, time.monotonic() - started, ok=False)
            log.exception("job %s %s failed (attempt %d)", job.kind, job.key, job.attempts)
            message = f"{type(exc).__name__}: {exc}"
            retry = None if job.attempts >= self.max_attempts else 30.0 * 2 ** (job.attempts - 1)
            self.queue.fail(job, message, retry)
        else:
            metrics.job_finished(job.kind, time.monotonic() - started, ok=True)
            self.queue.complete(job)
        return True

    def run_pending(self, limit: int) -> int:
        """Run due jobs one after another, at most `limit`; how many ran."""
        ran = 0
        while ran < limit and self.run_one():
            ran += 1
        return ran

    async def _loop(self) -> None:
        while True:
            try:
                ran = await run_in_threadpool(self.run_pending, 100)
                if not ran and self.idle is not None:
                    await run_in_threadpool(self.idle)
            except DatabaseUnavailable as exc:
                # Without a quorum no job can be taken: one line, not a traceback every poll.
                log.warning("the job runner waits for the database: %s", exc)
                ran = 0
            except Exception:
                log.exception("the job runner failed; retrying in %.0f s", self.poll_seconds)
                ran = 0
            if not ran:
                await asyncio.sleep(self.poll_seconds)

    async def run(self) -> None:
        """Run jobs until cancelled; a job cut short by shutdown is taken over when its lease expires."""
        loops = [asyncio.create_task(self._loop()) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*loops)
        finally:
            for loop in loops:
                loop.cancel()
