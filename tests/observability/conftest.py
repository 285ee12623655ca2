"""Fixtures for the observability tests: an in-process app with its own settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from observability_support import ADMIN_PASSWORD, AppFactory
from starlette.testclient import TestClient

from dockyard.app import create_app
from dockyard.auth import passwords
from dockyard.config import load_settings
from dockyard.registry.access import OpenAccess


@pytest.fixture(autouse=True)
def _quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's DOCKYARD_* variables must not leak in; the admin password hash need not be slow.
    for name in list(os.environ):
        if name.startswith("DOCKYARD_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


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
