"""`dockyard scan show|run` on a real data directory, with CliRunner and once as a real process."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from advisories import GLIBC
from click.testing import CliRunner
from registry_images import REPO, TAR_GZIP, Pushed, push_image, push_multiarch
from scan_support import tar_bytes

from dockyard.app import Services, build_services
from dockyard.cli import main
from dockyard.cli.scan import OPERATOR, split_reference
from dockyard.config import load_settings
from support import PostgresServer, dockyard_executable


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def data(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Services, Pushed]]:
    """A data directory (and, for PostgreSQL, DOCKYARD_DATABASE_URL, which the commands read) with
    advisories imported and a two-platform index pushed (not scanned yet)."""
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        monkeypatch.setenv("DOCKYARD_DATABASE_URL", server.create_database())
    data_dir = tmp_path / "data"
    services = build_services(load_settings(data_dir=data_dir))
    assert services.db.is_sqlite == (request.param == "sqlite")
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps([GLIBC]))
    services.scans.vulndb.import_path(feed, "test")
    pushed = push_multiarch(services)
    try:
        yield data_dir, services, pushed
    finally:
        services.db.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("team/app:v1", ("team/app", "v1")),
        ("team/app", ("team/app", "latest")),
        ("team/app@sha256:" + "a" * 64, ("team/app", "sha256:" + "a" * 64)),
        ("127.0.0.1:5000/team/app:v1", ("team/app", "v1")),
        ("registry.example.com/app", ("app", "latest")),
        ("localhost/app:1.0", ("app", "1.0")),
    ],
)
def test_split_reference(text: str, expected: tuple[str, str]) -> None:
    assert split_reference(text) == expected


def test_split_reference_rejects_empty_parts() -> None:
    with pytest.raises(click.BadParameter):
        split_reference("team/app@")


def test_show_before_and_after_the_scan(data: tuple[Path, Services, Pushed]) -> None:
    data_dir, _, pushed = data
    runner = CliRunner()
    queued = runner.invoke(main, ["scan", "show", f"{REPO}:latest", "--data-dir", str(data_dir)])
    assert queued.exit_code == 0, queued.output
    assert f"{REPO}@{pushed.index}: queued" in queued.output

    ran = runner.invoke(main, ["scan", "run", f"{REPO}:latest", "--data-dir", str(data_dir), "--wait", "60"])
    assert ran.exit_code == 0, ran.output
    lines = ran.output.splitlines()
    assert f"{REPO}@{pushed.index}: done  (CRITICAL 2  HIGH 0  MEDIUM 0  LOW 0  UNKNOWN 0)" in lines
    assert any(
        line.startswith("  linux/amd64") and "Debian GNU/Linux 12 (bookworm)" in line for line in lines
    )
    header = next(line for line in lines if line.startswith("PLATFORM"))
    assert header.split() == [
        "PLATFORM",
        "VULNERABILITY",
        "SEVERITY",
        "PACKAGE",
        "INSTALLED",
        "FIXED",
        "LAYER",
        "PATH",
    ]
    rows = [line.split() for line in lines[lines.index(header) + 1 :]]
    short = [layer.partition(":")[2][:12] for layer in (pushed.amd64_layers[0], pushed.arm64_layers[0])]
    assert rows == [
        [
            platform,
            "DSA-0001-1",
            "(CVE-2099-0001)",
            "CRITICAL",
            "libc6",
            "2.36-9+deb12u4",
            "2.36-9+deb12u7",
            f"sha256:{layer}",
            "/var/lib/dpkg/status",
        ]
        for platform, layer in zip(("linux/amd64", "linux/arm64/v8"), short, strict=True)
    ]

    as_json = runner.invoke(
        main, ["scan", "show", f"{REPO}@{pushed.arm64}", "--json", "--data-dir", str(data_dir)]
    )
    document = json.loads(as_json.output)
    assert document["report"]["status"] == "done"
    assert [(v["vuln_id"], v["fixed_version"]) for v in document["vulnerabilities"]] == [
        ("DSA-0001-1", "2.36-9+deb12u7")
    ]
    filtered = runner.invoke(
        main, ["scan", "show", f"{REPO}:latest", "--severity", "low", "--data-dir", str(data_dir)]
    )
    assert filtered.exit_code == 0 and "DSA-0001-1" not in filtered.output


def test_clear_errors(data: tuple[Path, Services, Pushed]) -> None:
    data_dir, services, _ = data
    runner = CliRunner()
    unknown = runner.invoke(main, ["scan", "show", "team/nothing:v1", "--data-dir", str(data_dir)])
    assert unknown.exit_code == 1 and "Error: no repository named team/nothing" in unknown.output
    missing_tag = runner.invoke(main, ["scan", "show", f"{REPO}:v9", "--data-dir", str(data_dir)])
    assert missing_tag.exit_code == 1 and f"no manifest v9 in repository {REPO}" in missing_tag.output
    services.auth.repositories.create(OPERATOR, "team/quiet")
    services.auth.repositories.update(OPERATOR, "team/quiet", scan_on_push=False)
    digest, _, _ = push_image(services, "team/quiet", "amd64", [(tar_bytes([("dir", "/etc")]), TAR_GZIP)])
    never = runner.invoke(main, ["scan", "show", f"team/quiet@{digest}", "--data-dir", str(data_dir)])
    assert never.exit_code == 1
    assert f"has not been scanned; scan it with `dockyard scan run team/quiet@{digest}`" in never.output
    assert "Traceback" not in unknown.output + missing_tag.output + never.output


def test_failed_scan_says_why(data: tuple[Path, Services, Pushed]) -> None:
    data_dir, services, _ = data
    digest, _, _ = push_image(services, REPO, "amd64", [(b"not a gzip stream", TAR_GZIP)])
    services.scans.run_pending()
    shown = CliRunner().invoke(main, ["scan", "show", f"{REPO}@{digest}", "--data-dir", str(data_dir)])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].startswith(f"{REPO}@{digest}: failed")
    assert lines[2].startswith("  image error: ") and "Traceback" not in shown.output


def test_real_process(data: tuple[Path, Services, Pushed]) -> None:
    data_dir, services, pushed = data
    services.scans.run_pending()
    result = subprocess.run(
        [dockyard_executable(), "scan", "show", f"{REPO}@{pushed.amd64}", "--data-dir", data_dir],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "DSA-0001-1 (CVE-2099-0001)" in result.stdout and "2.36-9+deb12u7" in result.stdout


def test_hidden_findings_package_filter_and_queue_only(data: tuple[Path, Services, Pushed]) -> None:
    data_dir, services, pushed = data
    services.scans.run_pending()
    services.scans.hide(OPERATOR, REPO, pushed.amd64, "DSA-0001-1", "libc6", "never called")
    runner = CliRunner()
    base = ["scan", "show", f"{REPO}:latest", "--data-dir", str(data_dir)]
    shown = runner.invoke(main, base)
    assert shown.exit_code == 0 and "CRITICAL 1" in shown.output
    assert [line.split()[0] for line in shown.output.splitlines() if "DSA-0001-1" in line] == [
        "linux/arm64/v8"
    ]
    everything = runner.invoke(main, [*base, "--include-hidden"])
    assert [line.split()[0] for line in everything.output.splitlines() if "(hidden)" in line] == [
        "linux/amd64"
    ]
    none = runner.invoke(main, [*base, "--package", "zlib1g"])
    assert none.exit_code == 0 and "DSA-0001-1" not in none.output

    queued = runner.invoke(
        main, ["scan", "run", f"{REPO}@{pushed.arm64}", "--wait", "0", "--data-dir", str(data_dir)]
    )
    assert queued.exit_code == 0 and f"queued a scan of {REPO}@{pushed.arm64}" in queued.output
    assert services.scans.report(OPERATOR, REPO, pushed.arm64).status == "queued"
