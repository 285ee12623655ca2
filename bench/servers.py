"""Starting and stopping the registries, each on fresh storage in its own temp dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import cpu_seconds, free_port

_READY_TIMEOUT = 60.0


@dataclass
class Server:
    """A running registry: its name, address and process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    log: Path
    ready_path: str
    notes: list[str] = field(default_factory=list)
    # Other process trees whose CPU is this server's too: the PostgreSQL a Dockyard replica runs on.
    cpu_roots: list[int] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's process tree and of its `cpu_roots` trees so far."""
        return sum(cpu_seconds(root) for root in (self.pid, *self.cpu_roots))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; log:\n{self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.base + self.ready_path, timeout=2) as response:
                    if response.status in {200, 401}:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {_READY_TIMEOUT:.0f} s")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def remove(self) -> None:
        """Delete the server's storage: minutes after the scale workloads, so done after the report."""
        # rm(1) clears the hundreds of thousands of files several times faster than shutil.rmtree.
        subprocess.run(["rm", "-rf", "--", str(self.workdir)], check=False)


def _dockyard_command() -> list[str]:
    script = Path(sys.executable).parent / "dockyard"
    if script.exists():
        return [str(script)]
    found = shutil.which("dockyard")
    if found is None:
        raise RuntimeError("the dockyard command is not installed in this environment")
    return [found]


def start_dockyard(
    password: str | None,
    extra_env: dict[str, str] | None = None,
    *,
    database_url: str | None = None,
    name: str = "dockyard",
) -> Server:
    """`dockyard serve` on a fresh data directory; its metadata in SQLite there unless `database_url`."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-dockyard-"))
    port = free_port()
    env = {**os.environ, "DOCKYARD_LOG_LEVEL": "warning", **(extra_env or {})}
    # Drop settings the developer's shell may carry, so the run only uses what it was given here.
    for key in ("DOCKYARD_CONFIG", "DOCKYARD_DATABASE_URL", "DOCKYARD_TLS_CERT", "DOCKYARD_TLS_KEY"):
        env.pop(key, None)
    if password is not None:
        env["DOCKYARD_ADMIN_PASSWORD"] = password
    log = workdir / "server.log"
    command = [*_dockyard_command(), "serve", "--data-dir", str(workdir / "data")]
    command += ["--listen", f"127.0.0.1:{port}"]
    if database_url is not None:
        command += ["--database-url", database_url]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(name, port, process, workdir, log, "/_ping")
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        server.remove()
        raise
    return server


_REFERENCE_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def start_reference() -> Server:
    """Debian's docker-registry (CNCF Distribution) with filesystem storage in a fresh temp dir."""
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        raise RuntimeError("the reference registry is missing: apt-get install docker-registry")
    workdir = Path(tempfile.mkdtemp(prefix="bench-reference-"))
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(_REFERENCE_CONFIG.format(root=workdir / "data", port=port))
    log = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    server = Server("reference", port, process, workdir, log, "/v2/")
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        server.remove()
        raise
    return server
