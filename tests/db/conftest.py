"""Fixtures for the database tests (PostgreSQL from the shared `postgres_server`)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DOCKYARD_"):
            monkeypatch.delenv(name)
