"""Plain helpers for the TLS tests (fixtures live in conftest.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from dockyard.config import Settings, load_settings

RunCli = Callable[..., Result]


def openssl(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real openssl command line."""
    return subprocess.run(
        ["openssl", *(str(a) for a in args)], capture_output=True, text=True, check=check, timeout=60
    )


def settings_for(data_dir: Path, **overrides: object) -> Settings:
    """Settings as `dockyard serve` would build them, with this data directory."""
    return load_settings(data_dir=data_dir, **overrides)
