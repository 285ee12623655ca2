"""The multiprocess directory: private, emptied at start, never another's; dead workers' gauges dropped."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.config import ConfigError
from dockyard.observability import multiprocess


def dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_prepare_makes_an_owner_only_directory(tmp_path: Path) -> None:
    target = tmp_path / "metrics"
    multiprocess.prepare(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700


def test_prepare_empties_this_users_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "metrics"
    target.mkdir(mode=0o777)
    (target / "counter_1.db").write_bytes(b"old")
    (target / "nested").mkdir()
    (target / "nested" / "x").write_bytes(b"old")
    multiprocess.prepare(target)
    assert list(target.iterdir()) == []
    assert stat.S_IMODE(target.stat().st_mode) == 0o700


def test_prepare_refuses_a_symlink(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_bytes(b"not ours to delete")
    (tmp_path / "metrics").symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="not a directory of this user"):
        multiprocess.prepare(tmp_path / "metrics")
    assert (elsewhere / "keep").exists()


def test_prepare_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "metrics").write_bytes(b"")
    with pytest.raises(ConfigError):
        multiprocess.prepare(tmp_path / "metrics")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory to another user")
def test_prepare_refuses_another_users_directory(tmp_path: Path) -> None:
    target = tmp_path / "metrics"
    target.mkdir()
    (target / "theirs").write_bytes(b"x")
    os.chown(target, 65534, 65534)
    with pytest.raises(ConfigError):
        multiprocess.prepare(target)
    assert (target / "theirs").exists()


def test_dead_workers_lose_their_live_gauges_but_keep_their_counts(tmp_path: Path) -> None:
    gone, alive = dead_pid(), os.getpid()
    for name in (f"gauge_livesum_{gone}.db", f"counter_{gone}.db", f"histogram_{gone}.db",
                 f"gauge_livesum_{alive}.db", f"counter_{alive}.db"):  # fmt: skip
        (tmp_path / name).write_bytes(b"")
    multiprocess.forget_dead_workers(tmp_path)
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {
        f"counter_{gone}.db",
        f"histogram_{gone}.db",
        f"gauge_livesum_{alive}.db",
        f"counter_{alive}.db",
    }
