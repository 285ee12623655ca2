"""What a server process tree costs: CPU seconds and resident memory, read from /proc."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path
from types import FrameType

_TICKS = os.sysconf("SC_CLK_TCK")


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # Once: a second SIGTERM must not cut short the clean-up the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_sigterm() -> None:
    """Make SIGTERM (`kill`, a test's time limit) an interrupt, so the servers started are stopped and
    their temp dirs removed as on Ctrl-C instead of being left running."""
    signal.signal(signal.SIGTERM, _interrupt)


def free_port() -> int:
    """A port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its closing one.
    return raw[raw.rindex(")") + 2 :].split()


def tree(root: int) -> list[int]:
    """The root and every live descendant (worker processes of a multi-process server)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cpu_seconds(root: int) -> float:
    """User + system CPU of the tree, including children that already exited and were reaped."""
    total = 0
    for pid in tree(root):
        fields = _stat_fields(pid)
        if fields:
            # utime, stime, cutime, cstime are fields 14-17 of stat; here shifted by the two skipped.
            total += sum(int(v) for v in fields[11:15])
    return total / _TICKS


def rss_bytes(root: int) -> int:
    """Resident memory summed over the tree."""
    total = 0
    for pid in tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes; (0, 0) once it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


class RssPeak:
    """Polls the tree's memory in the background and keeps the peaks of the sums.

    RSS counts pages that forked workers share once per worker; PSS splits each shared page between
    the processes using it, so the PSS sum is what the tree really holds. Both are kept.
    """

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self._root = root
        self._interval = interval
        self._stop = threading.Event()
        self.peak_rss = self.peak_pss = 0
        self._sample(tree(root))
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, pids: list[int]) -> None:
        sums = [_memory(pid) for pid in pids]
        self.peak_rss = max(self.peak_rss, sum(r for r, _ in sums))
        self.peak_pss = max(self.peak_pss, sum(p for _, p in sums))

    def _run(self) -> None:
        pids = tree(self._root)
        rounds = 0
        while not self._stop.wait(self._interval):
            rounds += 1
            if rounds % 20 == 0:
                # Workers may be respawned; rescanning /proc on every poll would cost more than it tells.
                pids = tree(self._root)
            self._sample(pids)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
