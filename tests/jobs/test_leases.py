"""Leases in the database: periodic work once per cluster, job leases renewed while the job runs."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dockyard.db.engine import Database
from dockyard.jobs import leases as leases_module
from dockyard.jobs.leases import Leases, PeriodicTask
from dockyard.jobs.queue import Job, JobQueue
from dockyard.jobs.worker import JobRunner
from support.servers import environment_without


@pytest.fixture
def url(migrated_url: str) -> str:
    """A freshly migrated database (SQLite and PostgreSQL)."""
    return migrated_url


def test_a_held_lease_is_refused_to_others_until_it_expires_or_is_released(
    migrated_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = Leases(migrated_db, "replica-a"), Leases(migrated_db, "replica-b")
    assert a.take("gc", 60) is True
    assert b.take("gc", 60) is False
    assert a.take("gc", 60) is False  # held means held, even by the same replica: once per interval
    assert b.extend("gc", 600) is False  # only the holder extends
    assert b.release("gc") is False
    assert a.take("other", 60) is True  # leases are per name

    later = time.time() + 61
    monkeypatch.setattr(leases_module.time, "time", lambda: later)
    assert b.take("gc", 60) is True  # a's lease ran out (its replica died): taken over
    assert a.extend("gc", 60) is False  # and a knows it lost it
    assert b.release("gc") is True
    assert a.take("gc", 60) is True


def test_extend_never_shortens(migrated_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = Leases(migrated_db, "replica-a"), Leases(migrated_db, "replica-b")
    assert a.take("gc", 3600)
    assert a.extend("gc", 1) is True
    later = time.time() + 60
    monkeypatch.setattr(leases_module.time, "time", lambda: later)
    assert b.take("gc", 60) is False


def test_threads_contending_for_a_lease_give_one_holder(url: str) -> None:
    handles = [Database(url) for _ in range(6)]
    start = threading.Barrier(len(handles))
    winners: list[str] = []
    errors: list[BaseException] = []

    def contend(index: int, handle: Database) -> None:
        start.wait()
        try:
            if Leases(handle, f"replica-{index}").take("vulndb-sync", 60):
                winners.append(f"replica-{index}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=pair) for pair in enumerate(handles)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for handle in handles:
        handle.close()
    assert not errors and len(winners) == 1


_REPLICA = """
import sys, time
from pathlib import Path
from dockyard.db.engine import Database
from dockyard.jobs.leases import Leases, PeriodicTask

url, log, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
db = Database(url)
def work():
    with log.open("a") as out:
        out.write("ran\\n")
task = PeriodicTask(Leases(db), "periodic:gc", 3600, work)
while not go.exists():
    time.sleep(0.01)
for _ in range(5):
    task.run_if_due()
db.close()
"""


def test_periodic_work_runs_once_across_processes(url: str, tmp_path: Path) -> None:
    log, go = tmp_path / "ran.log", tmp_path / "go"
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", _REPLICA, url, str(log), str(go)], env=environment_without("DOCKYARD_")
        )
        for _ in range(4)
    ]
    try:
        go.touch()
        codes = [replica.wait(60) for replica in replicas]
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.kill()
                replica.wait()
    assert codes == [0, 0, 0, 0]
    assert log.read_text() == "ran\n"


def test_a_periodic_run_longer_than_its_interval_keeps_its_lease(migrated_db: Database) -> None:
    other = PeriodicTask(Leases(migrated_db, "replica-b"), "periodic:gc", 1.0, lambda: None)
    attempts: list[bool] = []
    renewed = threading.Event()
    holder = Leases(migrated_db, "replica-a")
    extend = holder.extend

    def counting_extend(name: str, seconds: float) -> bool:
        result = extend(name, seconds)
        renewed.set()
        return result

    holder.extend = counting_extend  # type: ignore[method-assign]

    def long_work() -> None:
        # Outlive the 1 s interval; the renewals (every 0.3 s, 0.9 s ahead) keep the lease.
        assert renewed.wait(10)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            attempts.append(other.run_if_due())
            time.sleep(0.1)

    task = PeriodicTask(holder, "periodic:gc", 1.0, long_work, renew_seconds=0.3)
    assert task.run_if_due() is True
    assert attempts and not any(attempts)


def test_a_running_job_has_its_lease_renewed(migrated_db: Database) -> None:
    queue = JobQueue(migrated_db)
    queue.enqueue("scan", "long")
    seen: list[Job | None] = []

    def lease_until() -> float:
        with migrated_db.read() as conn:
            value = conn.exec_driver_sql("SELECT lease_until FROM jobs WHERE key = 'long'").scalar_one()
        return float(value)

    def long_scan(job: Job) -> None:
        first = lease_until()
        deadline = time.monotonic() + 20
        while lease_until() <= first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lease_until() > first  # renewed while running
        seen.append(queue.lease(["scan"], "another-worker", 60))

    runner = JobRunner(queue, {"scan": long_scan}, lease_seconds=3)
    assert runner.run_pending(1) == 1
    assert seen == [None]  # nobody else took it meanwhile
    assert queue.state("scan", ["long"]) == {"long": ("done", None)}


def test_renewal_reports_a_lost_job_lease(migrated_db: Database) -> None:
    queue = JobQueue(migrated_db)
    queue.enqueue("scan", "a")
    job = queue.lease(["scan"], "dead-replica", 0.05)
    assert job is not None
    time.sleep(0.1)
    taken = queue.lease(["scan"], "live-replica", 60)
    assert taken is not None
    assert queue.renew(job, 60) is False
    assert queue.renew(taken, 60) is True
