"""`dockyard.processes.alive`, shared by the metrics directory clean-up and scripts/ha_cluster.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from dockyard.processes import alive


def test_running_processes_are_alive() -> None:
    assert alive(os.getpid())
    assert alive(1)


def test_an_exited_child_is_dead_before_and_after_it_is_reaped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    # Not reaped yet: a zombie, which still answers signal 0 but is no running process.
    deadline = time.monotonic() + 10
    while not Path(f"/proc/{child.pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.01)
    assert not alive(child.pid)
    child.wait()
    assert not alive(child.pid)


def test_a_pid_nobody_has_is_dead() -> None:
    limit = int(Path("/proc/sys/kernel/pid_max").read_text())
    free = next(pid for pid in range(limit - 1, 1, -1) if not Path(f"/proc/{pid}").exists())
    assert not alive(free)
