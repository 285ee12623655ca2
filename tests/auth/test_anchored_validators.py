"""Every validator matches the whole input: a trailing newline, CR LF, NUL, Unicode digits or full-width
letters after (or instead of) a valid value are refused, not silently accepted or turned into a 500.

`re.match` with `$` accepts "alice\\n" (`$` also matches before a final newline), and `str.isdigit()`
accepts "²", which `int()` then refuses with a ValueError."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from auth_support import SYSTEM, World
from click.testing import CliRunner

from dockyard.auth.accounts import check_account_name
from dockyard.auth.errors import InvalidInput
from dockyard.auth.identity import FreshPassword
from dockyard.auth.organizations import check_team_name
from dockyard.cache.directory import CacheDirectory
from dockyard.cli import main
from dockyard.config import Settings
from dockyard.content.digests import parse_digest
from dockyard.content.errors import DigestInvalid, NameInvalid, TagInvalid
from dockyard.content.names import validate_name, validate_tag
from dockyard.db.engine import Database
from dockyard.events.audit import AuditLog
from dockyard.observability.multiprocess import _PID

# Each hostile variant of a valid value `v`.
SUFFIXES = ("\n", "\r\n", "\x00", "\r", " ")
SUBSTITUTES = {
    "arabic-indic digit": "\u0661",
    "superscript two": "\u00b2",
    "full-width a": "\uff41",
    "full-width 1": "\uff11",
    "dotless i": "\u0131",
}
HEX = "a" * 64


def _variants(valid: str) -> list[str]:
    """Hostile spellings of a valid value: a suffix appended, or its last character replaced."""
    return [valid + suffix for suffix in SUFFIXES] + [valid[:-1] + s for s in SUBSTITUTES.values()]


def _refuses(check: Callable[[str], Any], error: type[Exception], valid: str) -> None:
    check(valid)
    for value in _variants(valid):
        with pytest.raises(error):
            check(value)


@pytest.mark.parametrize(
    ("check", "error", "valid"),
    [
        (check_account_name, InvalidInput, "alice"),
        (check_team_name, InvalidInput, "Team1"),
        (validate_name, NameInvalid, "acme/app1"),
        (validate_tag, TagInvalid, "v1"),
        (parse_digest, DigestInvalid, "sha256:" + HEX[:-1] + "b"),
    ],
    ids=["account", "team", "repository", "tag", "digest"],
)
def test_validators_refuse_suffixes_and_non_ascii_look_alikes(
    check: Callable[[str], Any], error: type[Exception], valid: str
) -> None:
    _refuses(check, error, valid)


def test_a_digest_with_a_trailing_newline_is_not_the_digest() -> None:
    # It used to parse as the digest without the newline.
    for value in ("sha256:" + HEX + "\n", "sha512:" + "b" * 128 + "\n"):
        with pytest.raises(DigestInvalid):
            parse_digest(value)


def test_cache_names_and_urls_are_matched_whole(migrated_db: Database) -> None:
    caches = CacheDirectory(migrated_db, AuditLog(migrated_db, 30))
    for name in _variants("asia1"):
        with pytest.raises(InvalidInput):
            caches.add(None, name, "https://asia.example")
    for url in _variants("https://asia.example/v1"):
        with pytest.raises(InvalidInput):
            caches.add(None, "asia", url)
    assert caches.add(None, "asia", "https://asia.example/v1").url == "https://asia.example/v1"


def test_users_and_teams_with_a_trailing_newline_are_not_created(world: World) -> None:
    accounts = world.auth.accounts
    for name in ("bob\n", "bob\r\n", "bob\x00", "b\u00f6b", "bo\uff42"):
        with pytest.raises(InvalidInput):
            accounts.create_user(None, name, "a-password-1")
        with pytest.raises(InvalidInput):
            world.auth.organizations.create_team(SYSTEM, "acme", name)


def test_access_tokens_are_matched_whole(world: World) -> None:
    accounts, credentials = world.auth.accounts, world.auth.credentials
    alice = accounts.identity(accounts.user("alice").id)
    fresh = FreshPassword(alice.user_id or 0)
    for name in ("ci\n", "ci\r\n", "ci\x00"):
        with pytest.raises(InvalidInput):
            credentials.create_access_token(alice, name, fresh=fresh)
    _, secret = credentials.create_access_token(alice, "ci", fresh=fresh)
    assert credentials.authenticate_access_token("alice", secret) is not None
    for value in (secret + "\n", secret + "\r\n", secret + "\x00", "\n" + secret):
        assert credentials.authenticate_access_token("alice", value) is None


def test_the_multiprocess_pid_pattern_takes_ascii_digits_only() -> None:
    assert _PID.search("counter_123.db") is not None
    for name in ("counter_123.db\n", "counter_\u0661\u0662.db", "counter_\uff11.db", "counter_1.db.tmp"):
        assert _PID.search(name) is None, name


PORTS = ["\u00b2", "\uff15\uff10\uff10\uff10", "\u0665\u0660\u0660\u0660", "5000\n", " 5000"]


@pytest.mark.parametrize("port", PORTS)
def test_listen_ports_are_ascii_digits(port: str, tmp_path: Path) -> None:
    """`str.isdigit()` took full-width "5000" (int() made it 5000) and a superscript two (int() raised,
    a traceback from `dockyard cache serve`)."""
    with pytest.raises(ValueError, match="listen must be HOST:PORT"):
        Settings(listen=f"127.0.0.1:{port}")
    result = CliRunner().invoke(
        main,
        ["cache", "serve", "--upstream", "http://127.0.0.1:1", "--data-dir", str(tmp_path), "--listen",
         f"127.0.0.1:{port}"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "--listen must be HOST:PORT" in result.output
