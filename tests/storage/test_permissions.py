"""Files only for the registry's own user: the modes of what a live server writes, and the start check."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from registry_client import push_chunked, push_image, start_upload

from dockyard import app as app_module
from dockyard.app import build_services
from dockyard.config import load_settings
from dockyard.storage.permissions import GROUP_READABLE, OWNER_ONLY, Modes, check_tree
from support import DockyardFactory

PASSWORD = "permissions-admin-password"


def _modes(root: Path) -> Iterator[tuple[Path, int, bool]]:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            info = path.lstat()
            yield path, stat.S_IMODE(info.st_mode), stat.S_ISDIR(info.st_mode)


def _assert_modes(root: Path, modes: Modes) -> set[str]:
    """Every directory and file under root has exactly the modes (signing keys: owner-only whatever the
    setting); returns the names seen."""
    keys = root / "keys"

    def expected(path: Path, is_dir: bool) -> int:
        chosen = OWNER_ONLY if path == keys or keys in path.parents else modes
        return chosen.directory if is_dir else chosen.file

    wrong = [f"{path} {mode:04o}" for path, mode, is_dir in _modes(root) if mode != expected(path, is_dir)]
    assert wrong == []
    return {path.name for path, _, _ in _modes(root)}


@pytest.mark.parametrize("group_readable", [False, True], ids=["owner-only", "group-readable"])
def test_everything_a_live_server_writes_is_private(
    dockyard_server: DockyardFactory, tmp_path: Path, group_readable: bool
) -> None:
    # The test's own umask lets everybody read: the server must not rely on its parent's. The data
    # directory itself is made by the operator (here, too wide): the server warns about it.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    old = os.umask(0o022)
    try:
        env = {"DOCKYARD_ADMIN_PASSWORD": PASSWORD, "DOCKYARD_SCAN_WORKERS": "0"}
        if group_readable:
            env["DOCKYARD_DATA_GROUP_READABLE"] = "true"
        server = dockyard_server(env=env, data_dir=data_dir)
    finally:
        os.umask(old)
    with httpx.Client(base_url=server.url, auth=("admin", PASSWORD), timeout=30) as client:
        push_image(client, "perm/app", "v1", b'{"config": 1}', [b"layer one", b"layer two"])
        response = push_chunked(client, "perm/app", b"x" * 300_000, chunk=100_000)
        assert response.status_code == 201, response.text
        # Left open: its scratch file stays.
        location = start_upload(client, "perm/app")
        assert client.patch(location, content=b"partial").status_code == 202
        assert client.get("/auth/token", params={"service": "dockyard"}).status_code == 200
    names = _assert_modes(data_dir, GROUP_READABLE if group_readable else OWNER_ONLY)
    assert f"can be read by other users, e.g. {data_dir} (0755)" in server.log()
    # What the walk must have covered: database, its WAL and shared memory, the writer lock, blobs,
    # upload scratch space.
    assert {"dockyard.db", "dockyard.db-wal", "dockyard.db-shm", "dockyard.db.writer-lock"} <= names
    assert {"storage", "blobs", "uploads", "sha256", "data"} <= names


@pytest.fixture
def fresh_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each build checks again (the check runs once per data directory and process otherwise)."""
    monkeypatch.setattr(app_module, "_MODES_CHECKED", set())


@pytest.mark.usefixtures("fresh_check")
@pytest.mark.parametrize(
    ("where", "mode"),
    [("", 0o755), ("storage", 0o711), ("keys", 0o770), ("storage/blobs", 0o705)],
)
def test_start_warns_about_widened_entries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, where: str, mode: int
) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    build_services(settings).db.close()
    target = tmp_path / "data" / where if where else tmp_path / "data"
    target.mkdir(exist_ok=True)  # a blob directory appears with the first push
    target.chmod(mode)
    monkeypatch.setattr(app_module, "_MODES_CHECKED", set())
    (tmp_path / "data" / "dockyard.db").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="dockyard.app"):
        build_services(settings).db.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"{target} ({mode:04o})" in warnings[0]
    assert f"{tmp_path / 'data' / 'dockyard.db'} (0644)" in warnings[0]
    assert "chmod -R go-rwx" in warnings[0]


@pytest.mark.usefixtures("fresh_check")
def test_no_warning_when_modes_are_as_created(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    build_services(settings).db.close()
    with caplog.at_level(logging.WARNING, logger="dockyard.app"):
        build_services(settings).db.close()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_group_readable_modes_are_not_reported_but_wider_ones_are(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d").chmod(0o750)
    (tmp_path / "d" / "f").touch()
    (tmp_path / "d" / "f").chmod(0o640)
    (tmp_path / "d" / "world").touch()
    (tmp_path / "d" / "world").chmod(0o604)
    (tmp_path / "d" / "ca.crt").touch()
    (tmp_path / "d" / "ca.crt").chmod(0o644)  # public by design
    report = check_tree([tmp_path / "d"], GROUP_READABLE)
    assert report.too_wide == [(tmp_path / "d" / "world", 0o604)]
    strict = check_tree([tmp_path / "d"], OWNER_ONLY)
    assert {path.name for path, _ in strict.too_wide} == {"d", "f", "world"}


def test_check_is_bounded(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"f{i}").touch()
        (tmp_path / f"f{i}").chmod(0o644)
    report = check_tree([tmp_path], OWNER_ONLY, limit=10)
    assert report.truncated
    assert report.checked == 10


def test_every_command_starts_private(tmp_path: Path) -> None:
    """Commands that never build the services (certs init) still create owner-only directories."""
    from click.testing import CliRunner

    from dockyard.cli import main

    old = os.umask(0o022)
    try:
        result = CliRunner().invoke(main, ["certs", "init", "--data-dir", str(tmp_path / "data")])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "data" / "tls").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "data" / "tls" / "server.key").stat().st_mode) == 0o600
    assert check_tree([tmp_path / "data"], OWNER_ONLY).too_wide == []


@pytest.mark.parametrize("group_readable", [False, True], ids=["owner-only", "group-readable"])
def test_building_services_in_process_leaves_the_umask_alone(tmp_path: Path, group_readable: bool) -> None:
    """The umask is the command's (dockyard.cli): building services in a test or library does not
    change the process-wide umask under everything else that runs there; the files still get their modes."""
    old = os.umask(0o022)
    try:
        settings = load_settings(
            data_dir=tmp_path / "data", admin_password=PASSWORD, data_group_readable=group_readable
        )
        services = build_services(settings)
        services.db.close()
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(old)
    _assert_modes(tmp_path / "data", GROUP_READABLE if group_readable else OWNER_ONLY)


@pytest.mark.parametrize(("group_readable", "umask"), [(False, 0o077), (True, 0o027)])
def test_commands_set_the_umask_the_settings_ask_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group_readable: bool, umask: int
) -> None:
    from click.testing import CliRunner

    from dockyard.cli import main

    monkeypatch.setenv("DOCKYARD_DATA_GROUP_READABLE", "true" if group_readable else "false")
    old = os.umask(0o022)
    try:
        result = CliRunner().invoke(main, ["certs", "init", "--data-dir", str(tmp_path / "data")])
        assert os.umask(0o022) == umask
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
