"""`dockyard backup` and `dockyard restore` on the command line: messages, refusals, no secrets shown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dockyard.cli import main


def cli(*args: str | Path, stdin: str = "alice-password-1\n") -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=stdin)


def _secret_free(text: str) -> None:
    for secret in ("$argon2", "PRIVATE KEY", "alice-password-1"):
        assert secret not in text


def test_backup_and_restore_commands(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    source, target, archive = tmp_path / "source", tmp_path / "target", tmp_path / "backup.tar"
    made = cli("admin", "create-user", "--init", "--data-dir", source, "--password-stdin", "alice")
    assert made.exit_code == 0, made.output

    written = cli("backup", "--data-dir", source, archive)
    assert written.exit_code == 0, written.output
    assert f"wrote {archive}" in written.output
    assert "blobs: not included" in written.output
    assert archive.stat().st_mode & 0o777 == 0o600

    again = cli("backup", "--data-dir", source, archive)
    assert again.exit_code == 1
    assert "exists" in again.output and "--force" in again.output
    forced = cli("backup", "--data-dir", source, "--with-blobs", "--force", archive)
    assert forced.exit_code == 0, forced.output
    assert "blobs: 0 (0 bytes)" in forced.output

    restored = cli("restore", "--data-dir", target, archive)
    assert restored.exit_code == 0, restored.output
    assert "accounts: 1" in restored.output
    assert "signing_keys: 1" in restored.output
    assert "not restored (state of the old processes): leases, replicas, uploads" in restored.output
    listed = cli("admin", "list-users", "--data-dir", target)
    assert "alice" in listed.output

    refused = cli("restore", "--data-dir", target, archive)
    assert refused.exit_code == 1
    assert "not empty (1 accounts)" in refused.output

    for result in (made, written, forced, restored, refused):
        _secret_free(result.output)
    _secret_free(caplog.text)


def test_backup_refuses_where_no_registry_is(tmp_path: Path) -> None:
    result = cli("backup", "--data-dir", tmp_path / "nothing", tmp_path / "backup.tar")
    assert result.exit_code == 1
    assert "there is no Dockyard registry" in result.output
    assert not (tmp_path / "backup.tar").exists()
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize("content", [b"", b"not a tar at all", b"\0" * 10240])
def test_restore_of_something_else_is_a_clean_error(tmp_path: Path, content: bytes) -> None:
    archive = tmp_path / "backup.tar"
    archive.write_bytes(content)
    result = cli("restore", "--data-dir", tmp_path / "target", archive)
    assert result.exit_code == 1
    assert "Error:" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "target").exists()
