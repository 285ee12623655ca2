"""external_url must use the listener's scheme: refused at start otherwise, saying what to do."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tls_helpers import RunCli, settings_for

from dockyard.config import ConfigError
from dockyard.tls.layout import TlsLayout
from dockyard.tls.serving import check_external_url, resolve_tls
from support import free_port
from support.servers import dockyard_executable


@pytest.mark.parametrize(
    "url", ["http://registry.example.test", "http://registry.example.test:5000", "http://192.0.2.10"]
)
def test_http_external_url_on_a_tls_listener_is_refused(
    initialised: TlsLayout, data_dir: Path, url: str
) -> None:
    settings = settings_for(data_dir, external_url=url)
    assert resolve_tls(settings) is not None
    with pytest.raises(ConfigError, match=r"is http://, but this server serves HTTPS.*Use https://"):
        check_external_url(settings, serves_tls=True)


@pytest.mark.parametrize("url", ["https://registry.example.test", "https://localhost:5000"])
def test_https_external_url_on_a_plain_listener_is_refused(data_dir: Path, url: str) -> None:
    settings = settings_for(data_dir, external_url=url)
    assert resolve_tls(settings) is None
    with pytest.raises(
        ConfigError, match=r"is https://, but this server serves plain HTTP.*behind_tls_proxy"
    ):
        check_external_url(settings, serves_tls=False)


def test_https_external_url_behind_a_tls_proxy_is_allowed(data_dir: Path) -> None:
    settings = settings_for(data_dir, external_url="https://registry.example.test", behind_tls_proxy=True)
    check_external_url(settings, serves_tls=False)


@pytest.mark.parametrize(
    ("url", "tls"),
    [("https://registry.example.test", True), ("http://registry.example.test", False), (None, True)],
)
def test_matching_or_no_external_url_is_accepted(data_dir: Path, url: str | None, tls: bool) -> None:
    check_external_url(settings_for(data_dir, external_url=url), serves_tls=tls)


def test_a_tls_proxy_does_not_excuse_http_on_a_tls_listener(data_dir: Path) -> None:
    settings = settings_for(data_dir, external_url="http://registry.example.test", behind_tls_proxy=True)
    with pytest.raises(ConfigError):
        check_external_url(settings, serves_tls=True)


def _serve(data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    return subprocess.run(
        [str(dockyard_executable()), "serve", "--data-dir", str(data), "--listen", f"127.0.0.1:{free_port()}",
         *extra],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_serve_refuses_http_external_url_with_tls_before_listening(run_cli: RunCli, data_dir: Path) -> None:
    assert run_cli("certs", "init", "--data-dir", data_dir, "--host", "registry.example.test").exit_code == 0
    proc = _serve(data_dir, "--external-url", "http://registry.example.test")
    assert proc.returncode == 1
    assert "Error: external_url http://registry.example.test is http://" in proc.stderr
    assert "Traceback" not in proc.stderr and "Spawning worker" not in proc.stderr
    assert not (data_dir / "dockyard.db").exists(), "refused before anything was set up"


def test_serve_refuses_https_external_url_without_tls_before_listening(data_dir: Path) -> None:
    proc = _serve(data_dir, "--external-url", "https://registry.example.test")
    assert proc.returncode == 1
    assert "serves plain HTTP" in proc.stderr and "behind_tls_proxy" in proc.stderr
    assert "Traceback" not in proc.stderr and "Spawning worker" not in proc.stderr
