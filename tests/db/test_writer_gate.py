"""The SQLite writer gate: one holder at a time across threads and processes, a bounded wait, a private
file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from dockyard.db.engine import Database
from dockyard.db.writer_gate import WriterGate

# Each holder writes "enter" and "exit" lines while it holds the gate; an overlap shows as two enters in a
# row.
_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from dockyard.db.writer_gate import WriterGate

    gate = WriterGate(Path(sys.argv[1]), timeout=30)
    log = sys.argv[2]
    for _ in range(int(sys.argv[3])):
        with gate.hold():
            with open(log, "a") as out:
                out.write("enter\\n")
            time.sleep(0.002)
            with open(log, "a") as out:
                out.write("exit\\n")
    gate.close()
    """
)


def _hold_from_threads(gate: WriterGate, log: Path, threads: int, rounds: int) -> None:
    def run() -> None:
        for _ in range(rounds):
            with gate.hold():
                with log.open("a") as out:
                    out.write("enter\n")
                time.sleep(0.002)
                with log.open("a") as out:
                    out.write("exit\n")

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_one_holder_at_a_time_across_threads_and_processes(tmp_path: Path) -> None:
    lock, log = tmp_path / "db.writer-lock", tmp_path / "log"
    others = [subprocess.Popen([sys.executable, "-c", _HOLDER, str(lock), str(log), "25"]) for _ in range(2)]
    gate = WriterGate(lock, timeout=30)
    try:
        _hold_from_threads(gate, log, threads=4, rounds=10)
    finally:
        for other in others:
            assert other.wait(timeout=60) == 0
        gate.close()
    lines = log.read_text().split()
    assert len(lines) == 2 * (4 * 10 + 2 * 25)
    assert lines == ["enter", "exit"] * (len(lines) // 2)


def test_a_writer_stuck_behind_this_process_gives_up_after_the_timeout(tmp_path: Path) -> None:
    gate = WriterGate(tmp_path / "lock", timeout=0.2)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with gate.hold():
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(TimeoutError), gate.hold():
            pass
    finally:
        release.set()
        thread.join()
    with gate.hold():  # free again once the holder is done
        pass
    gate.close()


def test_the_lock_file_is_private_and_made_on_first_write(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        db.migrate()
        lock = tmp_path / "registry.db.writer-lock"
        with db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
        assert lock.exists()
        assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600
    finally:
        db.close()


def test_writes_from_many_threads_all_land(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        with db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")

        def insert(start: int) -> None:
            for value in range(start, start + 50):
                with db.write() as conn:
                    conn.exec_driver_sql("INSERT INTO probe VALUES (?)", (value,))

        threads = [threading.Thread(target=insert, args=(index * 50,)) for index in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with db.read() as conn:
            values = sorted(row[0] for row in conn.exec_driver_sql("SELECT x FROM probe"))
        assert values == list(range(400))
    finally:
        db.close()
