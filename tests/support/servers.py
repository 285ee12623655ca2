"""Registries under test: Dockyard itself (`dockyard serve`) and Debian's CNCF Distribution registry."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .processes import REPO, Service, free_port, http_status

REFERENCE_REGISTRY_BIN = Path("/usr/bin/docker-registry")


def dockyard_executable() -> Path:
    """The repository's .venv/bin/dockyard (scripts/test installs it), else the one beside this Python."""
    venv = REPO / ".venv" / "bin" / "dockyard"
    return venv if venv.exists() else Path(sys.executable).with_name("dockyard")


def environment_without(prefix: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment minus variables starting with `prefix`, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    env.update(extra or {})
    return env


@contextlib.contextmanager
def serving(
    args: Sequence[str | Path],
    port: int,
    log: Path,
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    timeout: float = 60,
) -> Iterator[Service]:
    """`dockyard serve ARGS` with exactly the environment `env` (in `cwd`), once GET /_ping on
    127.0.0.1:PORT answers 200 (where the arguments, settings file or environment put it); stopped at the end.
    For tests of how serve finds its settings; DockyardServer is the usual way to run one."""
    service = Service("dockyard serve", [dockyard_executable(), "serve", *args], log, env, cwd)
    service.start(lambda: http_status(f"http://127.0.0.1:{port}/_ping") == 200, timeout)
    try:
        yield service
    finally:
        service.stop()


class _OnLoopback:
    """A plain-HTTP server on 127.0.0.1 at `port`."""

    port: int

    @property
    def address(self) -> str:
        """HOST:PORT, as image references spell it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT."""
        return f"http://{self.address}"


class DockyardServer(_OnLoopback):
    """`dockyard serve` on 127.0.0.1:PORT with its own data directory.

    The developer's own DOCKYARD_* variables are dropped so they cannot leak into tests; `env` adds some back.
    With `via_env`, data dir and address go in DOCKYARD_DATA_DIR / DOCKYARD_LISTEN instead of options.
    """

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        *,
        port: int | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        via_env: bool = False,
        ready_timeout: float = 30,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.args = list(args)
        self.ready_timeout = ready_timeout
        location = {"DOCKYARD_DATA_DIR": str(data_dir), "DOCKYARD_LISTEN": self.address}
        argv: list[str | Path] = [dockyard_executable(), "serve"]
        if not via_env:
            argv += ["--data-dir", data_dir, "--listen", self.address]
        self.service = Service(
            "dockyard serve",
            [*argv, *self.args],
            log_path,
            environment_without("DOCKYARD_", {**(location if via_env else {}), **(env or {})}),
        )

    @property
    def running(self) -> bool:
        """The server process is alive."""
        return self.service.running

    def start(self) -> None:
        """Start and wait until GET /_ping answers 200; fails with the server's log if it dies."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.service.start(lambda: http_status(f"{self.url}/_ping") == 200, self.ready_timeout)

    def stop(self, timeout: float = 20) -> None:
        """Graceful stop (SIGTERM), SIGKILL after `timeout`."""
        self.service.stop(timeout)

    def kill(self) -> None:
        """SIGKILL the server and all its workers: a crash."""
        self.service.kill()

    def restart(self) -> None:
        """Stop (gracefully if still running), then start on the same port and data directory."""
        self.stop()
        self.start()

    def log(self, tail: int = 8000) -> str:
        """The end of the server's output (all runs, appended)."""
        return self.service.log(tail)


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


class ReferenceRegistry(_OnLoopback):
    """The CNCF Distribution registry (`docker-registry serve CONFIG`) on 127.0.0.1:PORT.

    Filesystem storage in `base/storage`, deletes enabled; `config` is merged over that (nested keys).
    """

    def __init__(self, base: Path, config: Mapping[str, Any] | None = None) -> None:
        self.base = base
        self.port = free_port()
        self.storage_dir = base / "storage"
        self.config_path = base / "config.yml"
        self.config = _merge(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {
                    "filesystem": {"rootdirectory": str(self.storage_dir)},
                    "delete": {"enabled": True},
                },
                "http": {"addr": self.address},
            },
            config or {},
        )
        # REGISTRY_* variables override the config file (REGISTRY_AUTH_FILE, meant for skopeo, would too).
        self.service = Service(
            "docker-registry",
            [REFERENCE_REGISTRY_BIN, "serve", self.config_path],
            base / "registry.log",
            environment_without("REGISTRY_"),
        )

    def __str__(self) -> str:
        return self.url

    def start(self, timeout: float = 30) -> None:
        """Write the config, start, wait until GET /v2/ answers."""
        if not REFERENCE_REGISTRY_BIN.exists():
            raise RuntimeError("docker-registry is not installed (Debian package docker-registry)")
        self.base.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config, indent=2))  # JSON is YAML
        self.service.start(lambda: http_status(f"{self.url}/v2/") is not None, timeout)

    def stop(self) -> None:
        """Stop the registry."""
        self.service.stop(10)

    def log(self, tail: int = 8000) -> str:
        """The end of the registry's output."""
        return self.service.log(tail)


class DockyardFactory(Protocol):
    """The `dockyard_server` fixture: starts a server (stopped at the end of the test)."""

    def __call__(
        self,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
        port: int | None = None,
        via_env: bool = False,
        ready_timeout: float = 30,
    ) -> DockyardServer: ...


class ReferenceRegistryFactory(Protocol):
    """The `reference_registry_factory` fixture: starts a reference registry with config overrides."""

    def __call__(self, config: Mapping[str, Any] | None = None) -> ReferenceRegistry: ...
