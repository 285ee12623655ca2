"""Fixtures for the content-domain tests: services on SQLite and on PostgreSQL (shared `postgres_server`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.app import Services, build_services
from dockyard.config import Settings, load_settings
from support import PostgresServer


@pytest.fixture(autouse=True)
def _cheap(cheap_hashes: None) -> None:
    """Password hashes need not be slow."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on a temporary data directory; on PostgreSQL, a fresh database."""
    if request.param == "sqlite":
        return load_settings(data_dir=tmp_path / "data")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return load_settings(data_dir=tmp_path / "data", database_url=server.create_database())


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    """The domain services, database migrated."""
    built = build_services(settings)
    try:
        yield built
    finally:
        built.db.close()
