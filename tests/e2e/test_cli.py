"""The `dockyard` command line as an operator meets it: help, clean errors, environment and config file."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from e2e_support import DOCKYARD, clean_env, free_port, run

from support.servers import serving

pytestmark = pytest.mark.e2e


def dockyard(*args: str | Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `dockyard ARGS` to completion (it must finish on its own)."""
    return run([DOCKYARD, *args], env=clean_env(**(env or {})), check=False, timeout=60)


def assert_clean_error(result: subprocess.CompletedProcess[str], *mentions: str) -> str:
    """Non-zero exit, no traceback, exactly one `Error:` line naming what is wrong; returns that line."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    # click prefixes usage errors with its usage hint; nothing else may accompany the error.
    others = [line for line in output.splitlines() if line.strip() and not line.startswith("Error:")]
    assert all(line.startswith(("Usage:", "Try ")) for line in others), output
    for mention in mentions:
        assert mention in errors[0], output
    return errors[0]


def test_top_level_help() -> None:
    result = dockyard("--help")
    assert result.returncode == 0, result.stderr
    for text in ("serve", "gc", "certs", "DOCKYARD_CONFIG", "DOCKYARD_"):
        assert text in result.stdout
    assert dockyard("-h").stdout == result.stdout


def test_serve_help_explains_every_option() -> None:
    result = dockyard("serve", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for option, explanation in (
        ("--listen HOST:PORT", "Address to listen on"),
        ("--data-dir", "Directory for the database, blobs"),
        ("--config FILE", "TOML configuration file"),
        ("--database-url", "SQLAlchemy URL"),
        ("--tls-cert", "Server certificate"),
        ("--tls-key", "private key"),
        ("--log-level", "verbosity"),
    ):
        assert option in text and explanation in text, f"{option}: {explanation}"
    assert "0.0.0.0:5000" in text, "the default address is stated"


@pytest.mark.parametrize("listen", ["nope", "127.0.0.1", "127.0.0.1:99999", ":5000", "127.0.0.1:http"])
def test_bad_listen_is_a_clean_error(listen: str, tmp_path: Path) -> None:
    result = dockyard("serve", "--listen", listen, "--data-dir", tmp_path / "data")
    assert_clean_error(result, "listen")


def test_bad_listen_from_the_environment_is_a_clean_error(tmp_path: Path) -> None:
    result = dockyard("serve", env={"DOCKYARD_LISTEN": "localhost", "DOCKYARD_DATA_DIR": str(tmp_path)})
    assert_clean_error(result, "listen")


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else already listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.mark.parametrize("where", ["foreign-address", "port-in-use"])
def test_unbindable_listen_address_is_a_clean_error(where: str, busy_port: int, tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is not an address of this machine, so binding fails.
    listen = "192.0.2.1:5000" if where == "foreign-address" else f"127.0.0.1:{busy_port}"
    result = dockyard("serve", "--listen", listen, "--data-dir", tmp_path / "data")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and listen.rpartition(":")[0] in errors[0], output


def test_missing_config_file_is_a_clean_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert_clean_error(dockyard("serve", "--config", missing), str(missing))
    assert_clean_error(dockyard("serve", env={"DOCKYARD_CONFIG": str(missing)}), str(missing))


def test_config_file_that_is_a_directory_is_a_clean_error(tmp_path: Path) -> None:
    assert_clean_error(dockyard("serve", env={"DOCKYARD_CONFIG": str(tmp_path)}), str(tmp_path))


def test_config_file_that_is_not_toml_is_a_clean_error(tmp_path: Path) -> None:
    config = tmp_path / "dockyard.toml"
    config.write_text("listen = \n")
    assert_clean_error(dockyard("serve", "--config", config), str(config), "TOML")


def test_config_file_that_is_not_text_is_a_clean_error(tmp_path: Path) -> None:
    config = tmp_path / "dockyard.toml"
    config.write_bytes(b"\xff\xfe\x00listen = 1\n")
    assert_clean_error(dockyard("serve", "--config", config), str(config))


def test_config_file_with_a_bad_value_is_a_clean_error(tmp_path: Path) -> None:
    config = tmp_path / "dockyard.toml"
    config.write_text('listen = "127.0.0.1:5000"\nno_such_setting = 1\n')
    assert_clean_error(dockyard("serve", "--config", config), "no_such_setting")
    config.write_text('listen = "not an address"\n')
    assert_clean_error(dockyard("serve", "--config", config), "listen")


def not_listening(port: int) -> bool:
    """Nothing accepts connections on 127.0.0.1:PORT."""
    try:
        httpx.get(f"http://127.0.0.1:{port}/_ping", timeout=2)
    except httpx.ConnectError:
        return True
    return False


@pytest.fixture
def layered(tmp_path: Path) -> dict[str, tuple[int, Path]]:
    """A port and a data directory for each source: the file, the environment and the options."""
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(free_port())
    return {
        source: (port, tmp_path / f"data-{source}")
        for source, port in zip(("file", "env", "option"), sorted(ports), strict=True)
    }


def write_config(tmp_path: Path, port: int, data_dir: Path) -> Path:
    """A TOML configuration file setting listen and data_dir."""
    config = tmp_path / "dockyard.toml"
    config.write_text(f'listen = "127.0.0.1:{port}"\ndata_dir = "{data_dir}"\nlog_level = "warning"\n')
    return config


def test_config_file_is_honoured(tmp_path: Path, layered: dict[str, tuple[int, Path]]) -> None:
    port, data_dir = layered["file"]
    config = write_config(tmp_path, port, data_dir)
    log = tmp_path / "serve.log"
    with serving([], port, log, clean_env(DOCKYARD_CONFIG=str(config))):
        assert (data_dir / "dockyard.db").exists()
    with serving(["--config", config], port, log, clean_env()) as served:
        assert served.running


def test_environment_overrides_the_file(tmp_path: Path, layered: dict[str, tuple[int, Path]]) -> None:
    file_port, file_dir = layered["file"]
    env_port, env_dir = layered["env"]
    config = write_config(tmp_path, file_port, file_dir)
    env = {"DOCKYARD_CONFIG": str(config), "DOCKYARD_LISTEN": f"127.0.0.1:{env_port}",
           "DOCKYARD_DATA_DIR": str(env_dir)}  # fmt: skip
    log = tmp_path / "serve.log"
    with serving([], env_port, log, clean_env(**env)):
        assert not_listening(file_port)
        assert (env_dir / "dockyard.db").exists()
        assert not file_dir.exists()


def test_environment_alone_is_honoured(tmp_path: Path, layered: dict[str, tuple[int, Path]]) -> None:
    port, data_dir = layered["env"]
    env = {"DOCKYARD_LISTEN": f"127.0.0.1:{port}", "DOCKYARD_DATA_DIR": str(data_dir)}
    log = tmp_path / "serve.log"
    with serving([], port, log, clean_env(**env)):
        assert (data_dir / "dockyard.db").exists()


def test_options_override_environment_and_file(tmp_path: Path, layered: dict[str, tuple[int, Path]]) -> None:
    file_port, file_dir = layered["file"]
    env_port, env_dir = layered["env"]
    option_port, option_dir = layered["option"]
    config = write_config(tmp_path, file_port, file_dir)
    env = {"DOCKYARD_CONFIG": str(config), "DOCKYARD_LISTEN": f"127.0.0.1:{env_port}",
           "DOCKYARD_DATA_DIR": str(env_dir)}  # fmt: skip
    log = tmp_path / "serve.log"
    options = ["--listen", f"127.0.0.1:{option_port}", "--data-dir", option_dir]
    with serving(options, option_port, log, clean_env(**env)):
        assert not_listening(env_port) and not_listening(file_port)
        assert (option_dir / "dockyard.db").exists()
        assert not env_dir.exists() and not file_dir.exists()
    # The file's other settings still apply underneath: log_level = "warning" hides the start-up INFO lines.
    assert "INFO" not in log.read_text()
