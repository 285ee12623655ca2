"""A private Docker engine (Debian's docker.io) on a unix socket of its own; no networking set up."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .images import BuiltImages, OciImage
from .processes import COMMAND_TIMEOUT, Service, kill_processes_mentioning, remove_tree, run, short_tempdir

# Debian's CLI, matching the 20.10 engine, even when another `docker` comes first on PATH.
DOCKER_CLI = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"


class DockerEngine:
    """dockerd with vfs storage, no iptables/bridge, state under a temp dir; it starts its own containerd
    when no system containerd runs, and uses its own containerd namespaces when one does."""

    def __init__(self) -> None:
        self.base = short_tempdir("dys-dk-")
        self.socket = self.base / "d.sock"
        namespace = f"dockyard-test-{os.getpid()}"
        config = self.base / "daemon.json"
        config.write_text("{}")  # not /etc/docker/daemon.json: its settings could clash with the flags
        self.service = Service(
            "dockerd",
            [
                "dockerd", "--config-file", config,
                "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs",
                "--data-root", self.base / "data", "--exec-root", self.base / "exec",
                "--pidfile", self.base / "dockerd.pid", "-H", self.host,
                "--containerd-namespace", namespace, "--containerd-plugins-namespace", f"{namespace}-plugins",
            ],
            self.base / "dockerd.log",
        )  # fmt: skip

    @property
    def host(self) -> str:
        """The -H / DOCKER_HOST value."""
        return f"unix://{self.socket}"

    def start(self, timeout: float = 120) -> None:
        """Start dockerd; returns once `docker info` answers."""

        def answers() -> bool:
            probe = run([DOCKER_CLI, "-H", self.host, "info"], check=False, timeout=30)
            return probe.returncode == 0

        self.service.start(answers, timeout)

    def stop(self) -> None:
        """Stop dockerd (it stops its containerd), kill whatever outlives it, delete the state."""
        self.service.stop(30)
        # A managed containerd has a session of its own; its command line names our directory.
        kill_processes_mentioning(str(self.base))
        remove_tree(self.base)

    def log(self, tail: int = 8000) -> str:
        """The end of dockerd's output."""
        return self.service.log(tail)

    def client(self, config_dir: Path) -> DockerClient:
        """A docker CLI for this engine with its own DOCKER_CONFIG (logins stay per test)."""
        return DockerClient(self, config_dir)


class DockerClient:
    """`docker -H unix://SOCK ...` with a private DOCKER_CONFIG. 127.0.0.0/8 registries are plain HTTP."""

    def __init__(self, engine: DockerEngine, config_dir: Path) -> None:
        self.engine = engine
        self.config_dir = config_dir
        config_dir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "DOCKER_CONFIG": str(config_dir)}
        self.env.pop("DOCKER_HOST", None)

    def __call__(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker ARGS`; raises CommandError (with stderr) on failure when `check`."""
        argv = [DOCKER_CLI, "-H", self.engine.host, *args]
        return run(argv, env=self.env, input=input, timeout=timeout, check=check)

    def load(self, images: BuiltImages, image: OciImage, reference: str) -> str:
        """`docker load` a single-arch test image offline, tagged `reference`; returns the reference."""
        self("load", "--input", str(images.docker_archive(image, reference)))
        return reference
