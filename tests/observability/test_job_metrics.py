"""The job runner reports each run's duration and outcome, by job kind."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from dockyard.db.engine import Database
from dockyard.jobs.queue import Job, JobQueue
from dockyard.jobs.worker import GiveUp, JobRunner


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_runs_are_timed_and_failures_counted(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    db.migrate()
    queue = JobQueue(db)
    for key in ("works", "breaks", "gives-up"):
        queue.enqueue("scan", key)

    def handler(job: Job) -> None:
        if job.key == "breaks":
            raise RuntimeError("scanner crashed")
        if job.key == "gives-up":
            raise GiveUp("image is gone")

    ok_before = sample("dockyard_job_duration_seconds_count", kind="scan", outcome="ok")
    failed_before = sample("dockyard_job_duration_seconds_count", kind="scan", outcome="failed")
    failures_before = sample("dockyard_job_failures_total", kind="scan")
    try:
        assert JobRunner(queue, {"scan": handler}, max_attempts=1).run_pending(10) == 3
    finally:
        db.close()
    assert sample("dockyard_job_duration_seconds_count", kind="scan", outcome="ok") - ok_before == 1
    assert sample("dockyard_job_duration_seconds_count", kind="scan", outcome="failed") - failed_before == 2
    assert sample("dockyard_job_failures_total", kind="scan") - failures_before == 2
