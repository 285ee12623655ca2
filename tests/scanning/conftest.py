"""Fixtures of the scanning suite: the real OSV snapshots beside the repository, layer builders."""

from __future__ import annotations

from pathlib import Path

import pytest

OSV_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "osv"


@pytest.fixture(scope="session")
def osv_dir() -> Path:
    """The directory holding `Go.zip` and `PyPI.zip` (real OSV records, see its README.md)."""
    assert (OSV_DIR / "Go.zip").is_file(), f"OSV snapshots missing at {OSV_DIR}"
    return OSV_DIR
