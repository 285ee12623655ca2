"""Fixtures shared by the whole suite; they drive real programs (see tests/support/).

Every process started here is stopped at the end of its scope, also when the test fails, and is killed by an
atexit hook if the session itself is interrupted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

import support
from support import (
    BuiltImages,
    ContainerTools,
    DockerClient,
    DockerEngine,
    DockyardFactory,
    DockyardServer,
    PostgresServer,
    ReferenceRegistry,
    ReferenceRegistryFactory,
    build_images,
)

if TYPE_CHECKING:
    from dockyard.db.engine import Database

Tool = Callable[..., subprocess.CompletedProcess[str]]


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # A run stopped with SIGTERM (a CI time limit, `kill`) becomes an interrupt, so fixtures still tear
    # down and stop the processes they started instead of leaving them running.
    signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture(autouse=True)
def _no_developer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the DOCKYARD_* variables of whoever runs the suite: settings read them."""
    for name in list(os.environ):
        if name.startswith("DOCKYARD_"):
            monkeypatch.delenv(name)


@pytest.fixture
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with its cheapest parameters: the production ones cost ~0.1 s per password check."""
    from argon2 import PasswordHasher

    from dockyard.auth import passwords

    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """The `support.free_port` helper, as a fixture: `free_port()` is a port nobody listens on."""
    return support.free_port


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL for the session; `.create_database()` returns a fresh database's URL."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The SQLAlchemy URL of a new, empty database (one per test)."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a freshly migrated database, on SQLite and on PostgreSQL, for tests where several
    handles (replicas) share one database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'dockyard.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database()
    from dockyard.db.engine import Database

    db = Database(url)
    try:
        db.migrate()
    finally:
        db.close()
    return url


@pytest.fixture
def migrated_db(migrated_url: str) -> Iterator[Database]:
    """A handle on the `migrated_url` database, closed at the end."""
    from dockyard.db.engine import Database

    handle = Database(migrated_url)
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def reference_registry_factory(tmp_path: Path) -> Iterator[ReferenceRegistryFactory]:
    """Starts CNCF Distribution registries, `factory(config_overrides)`; all stopped after the test."""
    with contextlib.ExitStack() as cleanup:
        count = 0

        def start(config: Mapping[str, Any] | None = None) -> ReferenceRegistry:
            nonlocal count
            registry = ReferenceRegistry(tmp_path / f"reference{count}", config)
            count += 1
            cleanup.callback(registry.stop)
            registry.start()
            return registry

        yield start


@pytest.fixture
def reference_registry(reference_registry_factory: ReferenceRegistryFactory) -> str:
    """The base URL (http://127.0.0.1:PORT) of a running reference registry with empty storage.

    For its address, storage directory or log, use `reference_registry_factory()`.
    """
    return reference_registry_factory().url


@pytest.fixture
def dockyard_server(tmp_path: Path) -> Iterator[DockyardFactory]:
    """Starts `dockyard serve` processes on free ports, by default each with a fresh data directory."""
    with contextlib.ExitStack() as cleanup:
        count = 0

        def start(
            *,
            args: Sequence[str] = (),
            env: Mapping[str, str] | None = None,
            data_dir: Path | None = None,
            port: int | None = None,
            via_env: bool = False,
            ready_timeout: float = 30,
        ) -> DockyardServer:
            nonlocal count
            server = DockyardServer(
                data_dir or tmp_path / f"dockyard{count}",
                tmp_path / f"dockyard{count}.log",
                port=port,
                args=args,
                env=env,
                via_env=via_env,
                ready_timeout=ready_timeout,
            )
            count += 1
            cleanup.callback(server.stop)
            server.start()
            return server

        yield start


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> BuiltImages:
    """OCI layouts built once per session by buildah, offline: `.single`, `.multilayer`, `.multiarch`."""
    return build_images(tmp_path_factory.mktemp("images"))


@pytest.fixture
def container_tools() -> Iterator[ContainerTools]:
    """skopeo, podman and buildah with state private to this test (storage, auth file, temp files)."""
    tools = ContainerTools()
    try:
        yield tools
    finally:
        tools.remove()


@pytest.fixture
def skopeo(container_tools: ContainerTools) -> Tool:
    """`skopeo(*args, tls_verify=False, check=True, input=None, timeout=180)` -> CompletedProcess."""
    return container_tools.skopeo


@pytest.fixture
def podman(container_tools: ContainerTools) -> Tool:
    """`podman(*args, ...)` with private storage; same keywords as `skopeo`."""
    return container_tools.podman


@pytest.fixture
def buildah(container_tools: ContainerTools) -> Tool:
    """`buildah(*args, ...)` with private storage; same keywords as `skopeo`."""
    return container_tools.buildah


@pytest.fixture(scope="session")
def dockerd() -> Iterator[DockerEngine]:
    """A private Docker engine, started the first time a test asks for it and stopped at the session's end."""
    engine = DockerEngine()
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()


@pytest.fixture
def docker(dockerd: DockerEngine, tmp_path: Path) -> DockerClient:
    """`docker(*args, check=True, input=None, timeout=180)` against the session's engine, with this test's
    own DOCKER_CONFIG; `docker.load(images, images.single, "REPO:TAG")` loads a test image offline."""
    return dockerd.client(tmp_path / "docker-config")
