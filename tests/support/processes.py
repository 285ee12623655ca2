"""Running real programs from tests: one-shot commands, background services, ports and temp dirs."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 180.0
# Proxies from the environment must never see test traffic: every server under test is on 127.0.0.1.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def short_tempdir(prefix: str) -> Path:
    """A fresh directory directly under /tmp: podman's --runroot and unix socket paths have length limits."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def remove_tree(path: Path) -> None:
    """rm -rf that also copes with the read-only directories container storage leaves behind."""
    if not path.exists():
        return
    try:
        shutil.rmtree(path)
    except OSError:
        # Without root, such directories need write permission back before their entries can go.
        subprocess.run(["chmod", "-R", "u+rwx", str(path)], capture_output=True, timeout=120, check=False)
        shutil.rmtree(path, ignore_errors=True)


class CommandError(subprocess.CalledProcessError):
    """A command exited non-zero; str() shows the command line and the tails of its output."""

    def __str__(self) -> str:
        return (
            f"{' '.join(map(str, self.cmd))} exited with {self.returncode}\n"
            f"--- stdout ---\n{(self.stdout or '')[-4000:]}\n--- stderr ---\n{(self.stderr or '')[-4000:]}"
        )


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = COMMAND_TIMEOUT,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (text output captured); raise CommandError on failure when `check`."""
    args = [str(a) for a in argv]
    result = subprocess.run(
        args,
        env=dict(env) if env is not None else None,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
    if check and result.returncode != 0:
        raise CommandError(result.returncode, args, result.stdout, result.stderr)
    return result


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status code of GET url, or None when nothing answers."""
    try:
        with _DIRECT.open(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return None


class Service:
    """A long-running program in its own process group, its output in a log file.

    Registered with atexit while running, so an interrupted session still kills it.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        # Signal the group at most once per start: once empty, its number may belong to someone else.
        self._group_live = False

    @property
    def running(self) -> bool:
        """The main process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def start(self, ready: Callable[[], bool], timeout: float) -> None:
        """Start, then wait until `ready()`; on death or timeout fail with the log (and kill)."""
        assert not self.running, f"{self.name} is already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        self._group_live = True
        atexit.register(self.kill)
        deadline = time.monotonic() + timeout
        try:
            while not ready():
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} not ready within {timeout:g} s:\n{self.log()}")
                time.sleep(0.1)
        except BaseException:
            self.kill()
            raise

    def log(self, tail: int = 8000) -> str:
        """The end of the service's output."""
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to the main process, SIGKILL to the group if it lingers; stragglers are killed too."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the whole process group (a crash, or the end of cleanup)."""
        if self.proc is None or not self._group_live:
            return
        self._group_live = False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        atexit.unregister(self.kill)


def kill_processes_mentioning(marker: str) -> None:
    """SIGKILL every process whose command line contains `marker` (a unique temp path of ours)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
