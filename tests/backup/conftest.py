"""Fixtures for the backup tests: no DOCKYARD_* variable of the developer's, fast password hashing."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _quiet_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cheap_hashes: None) -> None:
    # No ./dockyard.toml of the checkout is found.
    monkeypatch.chdir(tmp_path)
