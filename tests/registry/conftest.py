"""Fixtures for the protocol tests: an in-process app on SQLite and on PostgreSQL.

`postgres_server`, `reference_registry` and `free_port` are the shared fixtures of tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_support import open_client, sqlite_settings
from starlette.testclient import TestClient

from dockyard.config import Settings, load_settings
from support import PostgresServer


@pytest.fixture(autouse=True)
def _cheap(cheap_hashes: None) -> None:
    """The admin password hash need not be slow."""


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
