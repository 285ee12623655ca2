"""Fixtures for the protocol tests: an in-process app on SQLite and on PostgreSQL, and the reference registry.

`postgres_server`, `reference_registry` and `free_port` are local stand-ins for the shared fixtures of
tests/conftest.py (not there when this suite was written); they honour the same contract.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from registry_support import (
    PostgresServer,
    ReferenceRegistry,
    open_client,
    sqlite_settings,
)
from registry_support import free_port as _free_port
from starlette.testclient import TestClient

from dockyard.auth import passwords
from dockyard.config import Settings, load_settings


@pytest.fixture(autouse=True)
def _quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's DOCKYARD_* variables must not leak in; the admin password hash need not be slow.
    for name in list(os.environ):
        if name.startswith("DOCKYARD_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster for the whole session."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def reference_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of CNCF Distribution (docker-registry) with deletes enabled."""
    registry = ReferenceRegistry(tmp_path_factory.mktemp("reference"))
    try:
        registry.start()
        yield registry.url
    finally:
        registry.stop()


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function returning a free TCP port on 127.0.0.1."""
    return _free_port


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The metadata database under test."""
    name: str = request.param
    return name


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings on a temporary data directory; on PostgreSQL, a fresh database."""
    data_dir = tmp_path / "data"
    if backend == "sqlite":
        return sqlite_settings(data_dir)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return load_settings(data_dir=data_dir, database_url=server.create_database(), gc_interval_seconds=3600)


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    """A TestClient on create_app(settings, access=OpenAccess()), lifespan running."""
    with open_client(settings) as client:
        yield client
