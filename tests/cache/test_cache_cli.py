"""`dockyard cache add|list|remove|status` on the registry's own machine, and `cache serve`'s refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from dockyard.app import build_services
from dockyard.cli import main
from dockyard.config import Settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DOCKYARD_CONFIG", "DOCKYARD_DATA_DIR", "DOCKYARD_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    build_services(Settings(data_dir=data)).db.close()
    return data


def test_add_list_status_remove(data_dir: Path, free_port: Callable[[], int]) -> None:
    runner = CliRunner()
    port = free_port()
    added = runner.invoke(
        main, ["cache", "add", "--data-dir", str(data_dir), "asia", f"http://127.0.0.1:{port}"]
    )
    assert added.exit_code == 0, added.output
    assert "asia" in added.output and "DOWN" in added.output, "nothing listens there: checked, and down"
    listed = runner.invoke(main, ["cache", "list", "--data-dir", str(data_dir)])
    assert listed.exit_code == 0 and f"http://127.0.0.1:{port}" in listed.output
    again = runner.invoke(main, ["cache", "add", "--data-dir", str(data_dir), "asia", "http://elsewhere"])
    assert again.exit_code != 0 and "exists" in again.output
    bad = runner.invoke(main, ["cache", "add", "--data-dir", str(data_dir), "europe", "ftp://x"])
    assert bad.exit_code != 0 and "URL" in bad.output
    removed = runner.invoke(main, ["cache", "remove", "--data-dir", str(data_dir), "asia"])
    assert removed.exit_code == 0
    assert runner.invoke(main, ["cache", "list", "--data-dir", str(data_dir)]).output.strip() == ""
    missing = runner.invoke(main, ["cache", "remove", "--data-dir", str(data_dir), "asia"])
    assert missing.exit_code != 0 and "no cache named asia" in missing.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data-dir", "{tmp}/c"], "--upstream"),
        (["--upstream", "ftp://x", "--data-dir", "{tmp}/c"], "--upstream"),
        (["--upstream", "http://127.0.0.1:1"], "--data-dir"),
        (["--upstream", "http://127.0.0.1:1", "--data-dir", "{tmp}/c", "--listen", "nowhere"], "HOST:PORT"),
        (["--upstream", "http://127.0.0.1:1", "--data-dir", "{tmp}/c", "--max-size", "lots"], "size"),
        (["--upstream", "http://127.0.0.1:1", "--data-dir", "{tmp}/c", "--ttl", "soon"], "duration"),
        (["--upstream", "http://127.0.0.1:1", "--data-dir", "{tmp}/c", "--tls-cert", "{tmp}/x"], "--tls-key"),
    ],
)
def test_cache_serve_refuses_bad_settings(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "x").write_text("not a certificate")
    result = CliRunner().invoke(main, ["cache", "serve", *(a.format(tmp=tmp_path) for a in args)])
    assert result.exit_code != 0
    assert message in result.output


def test_cache_settings_come_from_the_file_too(tmp_path: Path) -> None:
    config = tmp_path / "cache.toml"
    config.write_text('[cache]\nupstream = "ftp://nope"\ndata_dir = "/tmp/x"\n')
    result = CliRunner().invoke(main, ["cache", "serve", "--config", str(config)])
    assert result.exit_code != 0 and "--upstream" in result.output
    config.write_text('[cache]\nupstream = "http://127.0.0.1:1"\ndata_dir = "/tmp/x"\nmax_size = "huge"\n')
    result = CliRunner().invoke(main, ["cache", "serve", "--config", str(config)])
    assert result.exit_code != 0 and "huge" in result.output
