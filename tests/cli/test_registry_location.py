"""Commands act on the registry the server uses, and never quietly make a new one (issue 15, item 4)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from dockyard.cli import main
from dockyard.config import default_data_dir
from support import free_port
from support.servers import dockyard_executable, serving

# Every command that opens a registry, with arguments that would otherwise work on an empty one.
COMMANDS = [
    ["admin", "create-user", "--password-stdin", "alice"],
    ["admin", "make-admin", "alice"],
    ["admin", "unmake-admin", "alice"],
    ["admin", "passwd", "--password-stdin", "alice"],
    ["admin", "list-users"],
    ["admin", "rotate-key"],
    ["gc"],
    ["gc", "--dry-run"],
    ["vulndb", "status"],
    ["vulndb", "import", "advisories.json"],
    ["scan", "show", "team/app:latest"],
    ["scan", "run", "team/app:latest", "--wait", "0"],
    ["cache", "add", "asia", "http://127.0.0.1:9"],
    ["cache", "list"],
    ["cache", "status"],
    ["cache", "remove", "asia"],
    ["backup", "backup.tar"],
]


def cli(*args: str | Path, stdin: str = "alice-password-1\n") -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=stdin)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*")) if path.exists() else []


@pytest.fixture
def advisories() -> Path:
    """A one-record OSV file in the working directory, for `vulndb import`."""
    path = Path("advisories.json")
    path.write_text('{"id": "GO-0000-0001", "modified": "2024-01-01T00:00:00Z", "affected": []}')
    return path


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_refuses_to_create_a_registry_in_the_default_place(
    command: list[str], advisories: Path, tmp_path: Path
) -> None:
    default = default_data_dir()  # the system directory as root, else under HOME: fresh ones (conftest)
    assert default.is_relative_to(tmp_path), "the test watches its own default, not the machine's"
    existed, before = default.exists(), files_under(Path.cwd())
    result = cli(*command)
    assert result.exit_code != 0
    assert "no Dockyard registry" in result.output and "--init" in result.output, result.output
    assert str(default) in result.output, "it names where it looked"
    assert "Traceback" not in result.output
    assert default.exists() == existed, "nothing was created in the default data directory"
    assert not (default / "dockyard.db").exists()
    assert files_under(Path.cwd()) == before


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_refuses_an_empty_data_dir_or_database(command: list[str], advisories: Path, tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    result = cli(*command, "--data-dir", empty)
    assert result.exit_code != 0 and str(empty) in result.output and "--init" in result.output
    assert not empty.exists()
    missing = tmp_path / "missing.db"
    result = cli(*command, "--database-url", f"sqlite:///{missing}")
    assert result.exit_code != 0 and "database" in result.output and "--init" in result.output
    assert not missing.exists()


def test_with_nothing_said_init_uses_the_default_place(tmp_path: Path) -> None:
    default = default_data_dir()
    assert default.is_relative_to(tmp_path)
    assert cli("admin", "create-user", "--init", "--password-stdin", "alice").exit_code == 0
    assert (default / "dockyard.db").exists()
    listed = cli("admin", "list-users")
    assert listed.exit_code == 0 and "alice" in listed.output
    assert files_under(Path.cwd()) == []


def test_init_creates_and_later_commands_find_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert (
        cli("admin", "create-user", "--data-dir", data, "--init", "--password-stdin", "alice").exit_code == 0
    )
    assert (data / "dockyard.db").exists()
    listed = cli("admin", "list-users", "--data-dir", data)
    assert listed.exit_code == 0 and "alice" in listed.output
    assert cli("gc", "--dry-run", "--data-dir", data).exit_code == 0


def test_settings_file_in_the_working_directory_is_found(tmp_path: Path) -> None:
    work = Path.cwd()
    (work / "dockyard.toml").write_text('data_dir = "registry"\n')
    assert cli("admin", "create-user", "--init", "--password-stdin", "alice").exit_code == 0
    # A relative data_dir is relative to the settings file, not to where the command runs.
    assert (work / "registry" / "dockyard.db").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    assert "no Dockyard registry" in cli("admin", "list-users").output, "no file here: the default place"
    listed = cli("admin", "list-users", "--config", work / "dockyard.toml")
    assert listed.exit_code == 0 and "alice" in listed.output
    assert not (elsewhere / "registry").exists()


def test_options_and_environment_beat_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("dockyard.toml").write_text('data_dir = "from-file"\n')
    chosen = tmp_path / "chosen"
    assert (
        cli("admin", "create-user", "--init", "--data-dir", chosen, "--password-stdin", "bob").exit_code == 0
    )
    monkeypatch.setenv("DOCKYARD_DATA_DIR", str(chosen))
    assert "bob" in cli("admin", "list-users").output
    assert not Path("from-file").exists()


def test_readme_flow_a_user_created_by_the_cli_can_log_in(tmp_path: Path) -> None:
    work = Path.cwd()
    (work / "dockyard.toml").write_text('data_dir = "data"\n')
    port = free_port()
    env = {**os.environ, "DOCKYARD_ADMIN_PASSWORD": "location-admin"}
    args = ["--listen", f"127.0.0.1:{port}", "--workers", "1"]
    with serving(args, port, tmp_path / "serve.log", env, cwd=work):
        created = subprocess.run(
            [str(dockyard_executable()), "admin", "create-user", "--password-stdin", "alice"],
            cwd=work, input="alice-password-1\n", capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        token = httpx.get(
            f"http://127.0.0.1:{port}/auth/token",
            params={"service": "dockyard"},
            auth=("alice", "alice-password-1"),
            timeout=10,
        )
        assert token.status_code == 200, token.text
    # alice logged in: the command wrote to the registry the server found through ./dockyard.toml. (Whether
    # the default place is left alone is the in-process tests' to say: these processes would look at the
    # machine's own default, which a test must not depend on.)
    assert (work / "data" / "dockyard.db").exists()
