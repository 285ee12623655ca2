"""Fixtures for the TLS tests: a clean environment, the CLI and a ready-made TLS directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tls_helpers import RunCli

from dockyard.cli import main
from dockyard.tls.layout import TlsLayout


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # `--config` sets DOCKYARD_CONFIG in the process; make sure it is gone again after each test.
    monkeypatch.setenv("DOCKYARD_CONFIG", "")
    monkeypatch.delenv("DOCKYARD_CONFIG")
    yield


@pytest.fixture
def run_cli() -> RunCli:
    """Run `dockyard ARGS...` in-process; returns click's Result (exit code, output)."""

    def run(*args: str | Path) -> Result:
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty data directory."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def initialised(run_cli: RunCli, data_dir: Path) -> TlsLayout:
    """A data directory after `dockyard certs init --host registry.example.test --ip 192.0.2.10`."""
    result = run_cli(
        "certs", "init", "--data-dir", data_dir, "--host", "registry.example.test", "--ip", "192.0.2.10"
    )
    assert result.exit_code == 0, result.output
    return TlsLayout.in_data_dir(data_dir)
