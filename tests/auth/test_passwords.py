"""Password hashing: argon2id with bounded memory, one hash at a time per process, and hashes made with
other parameters upgraded at the next login."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from argon2 import PasswordHasher
from auth_support import PASSWORD, AppFactory

from dockyard.auth import passwords
from dockyard.db import accounts as q

# argon2-cffi's own defaults (t=3, m=64 MiB, p=4): what hashes made before the change carry.
OLD_DEFAULTS = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)
# Taken at import, before the suite's fixtures swap in a cheap hasher.
REAL_HASHER = passwords.HASHER


@pytest.fixture
def production_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the suite's cheap hasher: these tests are about the real parameters."""
    monkeypatch.setattr(passwords, "HASHER", REAL_HASHER)


@pytest.mark.usefixtures("production_hasher")
def test_hashes_are_argon2id_with_19_mib() -> None:
    stored = passwords.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.verify_password(stored, "correct horse battery")
    assert not passwords.verify_password(stored, "correct horse battery!")
    assert not passwords.needs_rehash(stored)


@pytest.mark.usefixtures("production_hasher")
def test_a_hash_with_other_parameters_verifies_and_asks_for_a_rehash() -> None:
    stored = OLD_DEFAULTS.hash("correct horse battery")
    assert passwords.verify_password(stored, "correct horse battery")
    assert passwords.needs_rehash(stored)


def test_malformed_or_missing_hashes_never_match() -> None:
    assert not passwords.verify_password(None, PASSWORD)
    assert not passwords.verify_password("$argon2id$garbage", PASSWORD)
    assert not passwords.verify_password(passwords.hash_password("x" * 8), "x" * 2000)


class _CountingHasher(PasswordHasher):
    """The real hasher, recording how many calls overlap."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.inside = 0
        self.most = 0
        self._lock = threading.Lock()

    def _enter(self) -> None:
        with self._lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(0.02)  # long enough for the other threads to arrive if nothing held them back

    def _leave(self) -> None:
        with self._lock:
            self.inside -= 1

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self._enter()
        try:
            return super().verify(hash, password)
        finally:
            self._leave()

    def hash(self, password: str | bytes, **kwargs: Any) -> str:
        self._enter()
        try:
            return super().hash(password, **kwargs)
        finally:
            self._leave()


def test_one_hash_at_a_time_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = _CountingHasher()
    stored = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    monkeypatch.setattr(passwords, "HASHER", counting)
    with ThreadPoolExecutor(8) as pool:
        checks = [pool.submit(passwords.verify_password, stored, PASSWORD) for _ in range(6)]
        made = [pool.submit(passwords.hash_password, PASSWORD) for _ in range(2)]
        assert all(check.result() for check in checks)
        assert all(item.result().startswith("$argon2id$") for item in made)
    assert counting.most == 1


def test_login_upgrades_a_hash_made_with_other_parameters(make_world: AppFactory) -> None:
    world = make_world()
    accounts = world.auth.accounts
    with accounts.db.write() as conn:
        row = q.account_by_name(conn, "alice")
        assert row is not None
        q.update_account(conn, row.id, password_hash=OLD_DEFAULTS.hash(PASSWORD))
    assert accounts.authenticate("alice", PASSWORD) is not None
    with accounts.db.read() as conn:
        upgraded = q.account_by_name(conn, "alice")
    assert upgraded is not None and upgraded.password_hash is not None
    assert upgraded.password_hash.startswith("$argon2id$")
    assert not passwords.needs_rehash(upgraded.password_hash)
    assert passwords.verify_password(upgraded.password_hash, PASSWORD)
