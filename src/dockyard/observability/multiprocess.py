"""prometheus-client's multiprocess mode for `dockyard serve`: one private directory of value files.

Every worker process writes its own memory-mapped files there; a scrape, answered by any one worker,
adds up the files of all of them. The directory is per listening address and user, made owner-only,
and emptied at start (values from an earlier run would be added to this one's).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from prometheus_client import values
from prometheus_client.multiprocess import mark_process_dead

from dockyard.config import ConfigError
from dockyard.observability.metrics import instruments
from dockyard.processes import alive

ENV = "PROMETHEUS_MULTIPROC_DIR"
_PID = re.compile(r"_([0-9]+)\.db\Z")


def directory() -> Path | None:
    """The multiprocess directory in force in this process, or None (single-process mode)."""
    found = os.environ.get(ENV)
    return Path(found) if found else None


def default_directory(host: str, port: int) -> Path:
    """Where `dockyard serve` on HOST:PORT keeps its metric files: the user's runtime directory, else /tmp."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    safe_host = re.sub(r"[^A-Za-z0-9.]", "_", host)
    return Path(base) / f"dockyard-metrics-{os.geteuid()}-{safe_host}-{port}"


def prepare(path: Path) -> None:
    """Create `path` owner-only (0700), or empty it if this user's earlier run left it; else refuse."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise ConfigError(
                f"{path} exists and is not a directory of this user; remove it so `dockyard serve` can "
                "keep its metrics there"
            ) from None
        for entry in path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    os.chmod(path, 0o700)


def enable(path: Path) -> None:
    """Switch this process (and the workers it forks) to multiprocess mode, writing under `path`.

    Must run before the first metric is touched, since each value picks its storage when made.
    """
    if instruments.cache_info().currsize:
        raise RuntimeError("metrics were created before multiprocess mode was enabled")
    os.environ[ENV] = str(path)
    values.ValueClass = values.MultiProcessValue(process_identifier=_current_pid)  # type: ignore[no-untyped-call]


# Each value asks for the process id on every update to notice a fork; os.getpid() is a system call each
# time, so the id is kept here and refreshed in a forked child.
_pid = os.getpid()


def _refresh_pid() -> None:
    global _pid
    _pid = os.getpid()


def _current_pid() -> int:
    return _pid


os.register_at_fork(after_in_child=_refresh_pid)


def forget_dead_workers(path: Path) -> None:
    """Drop the live gauges of exited workers (their counters stay: totals never shrink)."""
    pids = {int(match[1]) for name in os.listdir(path) if (match := _PID.search(name))}
    for pid in pids:
        if not alive(pid):
            mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def remove(path: Path) -> None:
    """Delete the directory at shutdown."""
    shutil.rmtree(path, ignore_errors=True)
