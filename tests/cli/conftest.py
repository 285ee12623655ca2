"""Fixtures for the command-line tests: no DOCKYARD_* variable or settings file of the developer's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard import config


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cheap_hashes: None) -> Iterator[None]:
    # An empty working directory: no ./dockyard.toml unless a test writes one. HOME and the system data
    # directory too, so the default data directory (~/.local/share/dockyard, or /var/lib/dockyard as root)
    # is a fresh one the test can watch, whatever registry the machine holds.
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setattr(config, "SYSTEM_DATA_DIR", tmp_path / "system" / "dockyard")
    yield
    # `--config` sets DOCKYARD_CONFIG in the process; monkeypatch restores the rest.
    os.environ.pop("DOCKYARD_CONFIG", None)
