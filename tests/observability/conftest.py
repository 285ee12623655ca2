"""Fixtures for the observability tests: an in-process app with its own settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from observability_support import ADMIN_PASSWORD, AppFactory
from starlette.testclient import TestClient

from dockyard.app import create_app
from dockyard.config import load_settings
from dockyard.registry.access import OpenAccess


@pytest.fixture(autouse=True)
def _cheap(cheap_hashes: None) -> None:
    """The admin password hash need not be slow."""


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[AppFactory]:
    """Builds a TestClient (lifespan running) on a fresh data directory; `open_access`: no access control."""
    clients: list[TestClient] = []

    def make(*, open_access: bool = False, **overrides: Any) -> TestClient:
        settings = load_settings(
            data_dir=tmp_path / f"data{len(clients)}", admin_password=ADMIN_PASSWORD, **overrides
        )
        app = create_app(settings, access=OpenAccess() if open_access else None)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
