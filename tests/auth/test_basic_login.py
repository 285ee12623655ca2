"""Basic credentials on every /v2/ request: a password verified lately is settled by one read, and a
changed password, a disabled or deleted account, or a lock-out count on the very next request."""

from __future__ import annotations

import pytest
from auth_support import PASSWORD, SYSTEM, AppFactory, World

from dockyard.db import accounts as q
from support import PostgresServer

ADDRESS = "testclient"  # what Starlette's TestClient reports as the peer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def basic_world(request: pytest.FixtureRequest, make_world: AppFactory) -> World:
    """The default world on SQLite (reads inline) and on PostgreSQL (reads off the loop)."""
    if request.param == "sqlite":
        return make_world(login_throttle_threshold=3, login_throttle_base_seconds=60)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return make_world(
        login_throttle_threshold=3, login_throttle_base_seconds=60, database_url=server.create_database()
    )


def _v2(world: World, password: str, user: str = "alice") -> int:
    repository = "acme/private" if user == "ro" else "alice/private"
    return world.client.get(f"/v2/{repository}/tags/list", auth=(user, password)).status_code


def test_a_verified_password_is_remembered_and_answers_without_argon2(basic_world: World) -> None:
    auth = basic_world.auth.authenticator
    assert auth.remembered_login("alice", PASSWORD, ADDRESS) is None
    assert _v2(basic_world, PASSWORD) == 200  # allowed: an empty tag list
    remembered = auth.remembered_login("alice", PASSWORD, ADDRESS)
    assert remembered is not None and remembered.name == "alice"
    assert auth.remembered_login("alice", PASSWORD + "x", ADDRESS) is None
    assert auth.remembered_login("nobody", PASSWORD, ADDRESS) is None
    assert _v2(basic_world, PASSWORD) == 200
    assert _v2(basic_world, PASSWORD, user="outsider") == 403


def test_a_changed_password_counts_on_the_next_request(basic_world: World) -> None:
    assert _v2(basic_world, PASSWORD) == 200
    basic_world.auth.accounts.set_password(SYSTEM, "alice", "another-password-2")
    assert basic_world.auth.authenticator.remembered_login("alice", PASSWORD, ADDRESS) is None
    assert _v2(basic_world, PASSWORD) == 401
    assert _v2(basic_world, "another-password-2") == 200


def test_a_disabled_or_deleted_account_counts_on_the_next_request(basic_world: World) -> None:
    accounts = basic_world.auth.accounts
    assert _v2(basic_world, PASSWORD) == 200
    accounts.set_active(SYSTEM, "alice", False)
    assert basic_world.auth.authenticator.remembered_login("alice", PASSWORD, ADDRESS) is None
    assert _v2(basic_world, PASSWORD) == 401
    accounts.set_active(SYSTEM, "alice", True)
    assert _v2(basic_world, PASSWORD) == 200
    # alice holds repositories, so a team member is the one deleted.
    assert _v2(basic_world, PASSWORD, user="ro") == 200
    accounts.delete_account(SYSTEM, "ro")
    assert basic_world.auth.authenticator.remembered_login("ro", PASSWORD, ADDRESS) is None
    assert _v2(basic_world, PASSWORD, user="ro") == 401


def test_a_lock_out_stops_a_remembered_password(basic_world: World) -> None:
    assert _v2(basic_world, PASSWORD) == 200
    for _ in range(3):
        assert _v2(basic_world, "wrong-password") == 401
    assert basic_world.auth.authenticator.remembered_login("alice", PASSWORD, ADDRESS) is None
    assert _v2(basic_world, PASSWORD) == 429


def test_a_success_after_failures_clears_them(basic_world: World) -> None:
    assert _v2(basic_world, "wrong-password") == 401
    throttle = basic_world.auth.throttle
    assert throttle.state("alice", ADDRESS).pair.failures == 1
    assert _v2(basic_world, PASSWORD) == 200
    state = throttle.state("alice", ADDRESS)
    # The address's failures are cleared; the account keeps the wrong guess (a distributed guesser's
    # count is not wiped by the owner's sign-in).
    assert state.pair.failures == 0 and state.account_failures.failures == 1
    assert basic_world.auth.authenticator.remembered_login("alice", PASSWORD, ADDRESS) is not None


def test_login_state_reads_account_and_counts_in_one_query(basic_world: World) -> None:
    db = basic_world.auth.throttle.db
    with db.write() as conn:
        q.lock_login_failures(conn, ["pair:alice|10.0.0.1", "account:alice"])
        q.save_login_failures(conn, "pair:alice|10.0.0.1", q.FailureRow(9, 100.0, 500.0))
        q.save_login_failures(conn, "account:alice", q.FailureRow(1, 100.0, 0.0))
    with db.read() as conn:
        unknown = q.login_state(conn, "nobody", "pair:nobody|10.0.0.1", "account:nobody")
        alice = q.login_state(conn, "alice", "pair:alice|10.0.0.1", "account:alice")
        elsewhere = q.login_state(conn, "alice", "pair:alice|10.0.0.2", "account:alice")
    assert unknown.account is None and unknown.pair == q.FailureRow() == unknown.account_failures
    assert alice.account is not None and alice.account.name == "alice" and alice.account.kind == q.USER
    assert (alice.pair.failures, alice.pair.blocked_until) == (9, 500.0)
    assert alice.account_failures.failures == 1
    assert elsewhere.pair.failures == 0 and elsewhere.account_failures.failures == 1
