"""The job queue and its runner on SQLite and PostgreSQL: one row per key, leases, takeover, retries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from dockyard.db.engine import Database
from dockyard.jobs.queue import Job, JobQueue
from dockyard.jobs.worker import GiveUp, JobRunner
from support import PostgresServer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobQueue]:
    """A queue on a freshly migrated database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database()
    db = Database(url)
    db.migrate()
    try:
        yield JobQueue(db)
    finally:
        db.close()


def test_one_job_per_key_while_queued_or_running(queue: JobQueue) -> None:
    assert queue.enqueue("scan", "a", {"n": 1}) is True
    assert queue.enqueue("scan", "a", {"n": 2}) is False
    assert queue.enqueue("other", "a") is True  # keys are per kind
    job = queue.lease(["scan"], "w1", 60)
    assert job is not None and (job.key, job.payload, job.attempts) == ("a", {"n": 1}, 1)
    assert queue.enqueue("scan", "a") is False  # running
    assert queue.lease(["scan"], "w2", 60) is None
    assert queue.complete(job) is True
    assert queue.state("scan", ["a"]) == {"a": ("done", None)}


def test_rearm_or_at_most_once(queue: JobQueue) -> None:
    queue.enqueue("scan", "a")
    job = queue.lease(["scan"], "w", 60)
    assert job is not None and queue.complete(job)
    assert queue.enqueue("sync", "bucket-1", rearm=False) is True
    sync = queue.lease(["sync"], "w", 60)
    assert sync is not None and queue.complete(sync)
    assert queue.enqueue("sync", "bucket-1", rearm=False) is False  # another replica, same interval
    assert queue.enqueue("scan", "a", {"force": True}) is True  # done work asked for again
    again = queue.lease(["scan"], "w", 60)
    assert again is not None and again.payload == {"force": True} and again.attempts == 1


def test_run_after_delays_a_job(queue: JobQueue) -> None:
    queue.enqueue("scan", "later", run_after=time.time() + 3600)
    assert queue.lease(["scan"], "w", 60) is None


def test_expired_lease_is_taken_over_and_the_old_worker_cannot_finish(queue: JobQueue) -> None:
    queue.enqueue("scan", "a")
    crashed = queue.lease(["scan"], "dead-replica", 0.05)
    assert crashed is not None
    time.sleep(0.1)
    taken = queue.lease(["scan"], "live-replica", 60)
    assert taken is not None and taken.id == crashed.id and taken.attempts == 2
    assert queue.complete(crashed) is False
    assert queue.complete(taken) is True


def test_concurrent_workers_never_share_a_job(queue: JobQueue) -> None:
    keys = [f"k{i}" for i in range(20)]
    for key in keys:
        queue.enqueue("scan", key)
    taken: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def work(name: str) -> None:
        start.wait()
        while (job := queue.lease(["scan"], name, 60)) is not None:
            with lock:
                taken.append(job.key)
            queue.complete(job)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(taken) == sorted(keys)


def test_runner_retries_then_gives_up(queue: JobQueue) -> None:
    calls: list[int] = []

    def flaky(job: Job) -> None:
        calls.append(job.attempts)
        raise RuntimeError("storage hiccup")

    def hopeless(job: Job) -> None:
        raise GiveUp("manifest is gone")

    runner = JobRunner(queue, {"flaky": flaky, "hopeless": hopeless}, max_attempts=2)
    queue.enqueue("flaky", "a")
    queue.enqueue("hopeless", "b")
    assert runner.run_pending(10) == 2
    state, error = queue.state("flaky", ["a"])["a"]
    assert state == "queued" and error == "RuntimeError: storage hiccup"  # retried later, with a delay
    assert queue.state("hopeless", ["b"])["b"] == ("failed", "manifest is gone")
    assert runner.run_pending(10) == 0  # the retry is not due yet


def test_prune_forgets_old_finished_jobs_only(queue: JobQueue) -> None:
    queue.enqueue("scan", "done")
    queue.enqueue("scan", "waiting", run_after=time.time() + 3600)
    job = queue.lease(["scan"], "w", 60)
    assert job is not None and queue.complete(job)
    assert queue.prune(timedelta(seconds=-1)) == 1
    assert set(queue.state("scan", ["done", "waiting"])) == {"waiting"}


def test_the_runner_waits_for_a_database_that_is_away_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a quorum every poll fails: a warning line each time, not a traceback, and the loop goes on."""
    db = Database("postgresql+psycopg://x@/d?host=127.0.0.1:1&connect_timeout=1")
    runner = JobRunner(JobQueue(db), {"scan": lambda job: None}, poll_seconds=0.05)

    async def run_a_while() -> None:
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(0.5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        with caplog.at_level(logging.WARNING, logger="dockyard.jobs.worker"):
            asyncio.run(run_a_while())
    finally:
        db.close()
    waits = [r for r in caplog.records if "waits for the database" in r.getMessage()]
    assert len(waits) >= 2
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in caplog.records)
