"""Passwords (argon2id), the first-start administrator, and `dockyard admin`."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from auth_support import ADMIN_PASSWORD, SYSTEM, World
from click.testing import CliRunner

from dockyard.app import build_services, create_app
from dockyard.auth import passwords
from dockyard.auth.errors import Conflict, Forbidden, InvalidInput
from dockyard.auth.identity import Identity
from dockyard.auth.policy import Action
from dockyard.cli import main
from dockyard.config import Settings


def test_argon2id_hashes_and_verification() -> None:
    hashed = passwords.hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert passwords.verify_password(hashed, "correct horse")
    assert not passwords.verify_password(hashed, "wrong horse")
    assert not passwords.verify_password("not-a-hash", "correct horse")
    assert not passwords.verify_password(None, "correct horse")


def test_production_hasher_is_argon2id_with_rfc9106_parameters() -> None:
    from argon2 import PasswordHasher, Type

    default = PasswordHasher()
    assert default.type is Type.ID
    assert default.memory_cost >= 65536 and default.time_cost >= 3


def _admin_exists(settings: Settings, password: str) -> bool:
    services = build_services(settings)
    assert services.auth is not None
    try:
        identity = services.auth.accounts.authenticate("admin", password)
    finally:
        services.db.close()
    return identity is not None and identity.is_admin


def test_first_start_uses_the_configured_password(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, admin_password=ADMIN_PASSWORD)
    create_app(settings)
    assert _admin_exists(settings, ADMIN_PASSWORD)


def test_first_start_reads_the_password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file-123\n")
    monkeypatch.setenv("DOCKYARD_ADMIN_PASSWORD_FILE", str(secret))
    settings = Settings(data_dir=tmp_path / "data")
    create_app(settings)
    assert _admin_exists(settings, "from-a-file-123")


def test_first_start_generates_and_logs_a_password_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="dockyard.app"):
        create_app(settings)
    lines = [r.getMessage() for r in caplog.records if "created the system administrator" in r.getMessage()]
    assert len(lines) == 1
    password = lines[0].split("password ")[1].split(" ")[0]
    assert _admin_exists(settings, password)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dockyard.app"):
        create_app(settings)
    assert not [r for r in caplog.records if "created the system administrator" in r.getMessage()]


def test_short_admin_password_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 8"):
        Settings(data_dir=tmp_path, admin_password="short")


def _cli(*args: str | Path, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], input=input)
    return result.exit_code, result.output


def test_admin_commands(tmp_path: Path) -> None:
    data = ["--data-dir", tmp_path]
    # The first command makes the registry, which a command only does when asked (--init).
    first = ["admin", "create-user", *data, "--init", "--password-stdin", "bob"]
    assert _cli(*first, input="bob-password-1\n")[0] == 0
    code, output = _cli("admin", "create-user", *data, "--password-stdin", "bob", input="bob-password-1\n")
    assert code != 0 and "taken" in output
    code, output = _cli(
        "admin", "create-user", *data, "--password-stdin", "Bad Name", input="bob-password-1\n"
    )
    assert code != 0 and "lowercase" in output
    code, output = _cli("admin", "create-user", *data, "--password-stdin", "carol", input="short\n")
    assert code != 0 and "at least 8" in output
    assert _cli("admin", "make-admin", *data, "bob")[0] == 0
    assert "bob\tadmin" in _cli("admin", "list-users", *data)[1]
    # bob is the only administrator: the last one cannot be removed.
    code, output = _cli("admin", "unmake-admin", *data, "bob")
    assert code != 0 and "last system administrator" in output
    assert (
        _cli("admin", "create-user", *data, "--password-stdin", "--admin", "dave", input="dave-password\n")[0]
        == 0
    )
    assert _cli("admin", "unmake-admin", *data, "bob")[0] == 0
    assert "bob\t-" in _cli("admin", "list-users", *data)[1]
    assert _cli("admin", "passwd", *data, "--password-stdin", "bob", input="new-password-2\n")[0] == 0
    settings = Settings(data_dir=tmp_path)
    services = build_services(settings)
    assert services.auth is not None
    assert services.auth.accounts.authenticate("bob", "new-password-2") is not None
    assert services.auth.accounts.authenticate("bob", "bob-password-1") is None
    events = services.auth.audit.events(SYSTEM, limit=20)
    assert {"user.create", "user.admin.grant", "user.admin.revoke", "user.password.reset"} <= {
        e.action for e in events
    }
    services.db.close()
    code, output = _cli("admin", "rotate-key", *data)
    assert code == 0 and "new signing key" in output


def test_account_rules(world: World) -> None:
    accounts = world.auth.accounts
    outsider = accounts.identity(accounts.user("outsider").id)
    assert outsider is not None
    with pytest.raises(Forbidden):
        accounts.create_user(outsider, "mallory", "mallory-pass-1")
    with pytest.raises(Forbidden):
        world.auth.organizations.create_organization(outsider, "evil", ["outsider"])
    with pytest.raises(Forbidden):
        world.auth.organizations.create_team(outsider, "acme", "intruders")
    with pytest.raises(Conflict):
        world.auth.organizations.create_organization(SYSTEM, "alice", [])
    with pytest.raises(InvalidInput) as bad:
        world.auth.organizations.create_team(SYSTEM, "acme", "bad name!")
    assert bad.value.field == "name"
    owner = accounts.identity(accounts.user("owner").id)
    assert owner is not None
    world.auth.organizations.create_team(owner, "acme", "builders")
    world.auth.grants.set_namespace_grant(owner, "acme", "builders", "read-write")
    world.auth.organizations.set_member(owner, "acme", "builders", "outsider", True)
    assert world.auth.permissions.may(outsider, "acme/new-thing", Action.PUSH)
    read_only = Identity(outsider.user_id, outsider.name, token_id=1, read_only=True)
    with pytest.raises(Forbidden):
        accounts.set_password(read_only, "outsider", "another-pass-1")
