"""Brute-force protection: guesses counted before they are evaluated, per account and address.

Concurrent guesses cannot outrun the count (threads, processes; SQLite and PostgreSQL), a lock-out holds
only the address that earned it, and a distributed guesser cannot lock the owner out.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from auth_support import PASSWORD, SYSTEM, AppFactory, World
from starlette.testclient import TestClient

from dockyard.app import build_auth
from dockyard.auth.authenticate import SignIn
from dockyard.auth.errors import Throttled, Unauthenticated
from dockyard.auth.throttle import ACCOUNT_FACTOR
from dockyard.config import Settings
from dockyard.db import accounts as q
from dockyard.db.engine import Database

THRESHOLD = 3
GUESSES = 60


def _world(request: pytest.FixtureRequest, make_world: AppFactory, **settings: Any) -> World:
    settings = {"login_throttle_threshold": THRESHOLD, "login_throttle_base_seconds": 300, **settings}
    if request.param == "postgres":
        settings["database_url"] = request.getfixturevalue("postgres_server").create_database()
    return make_world(**settings)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def throttled_world(request: pytest.FixtureRequest, make_world: AppFactory) -> World:
    """A world with a threshold of 3 and a long lock-out, trusting 10.0.0.1 as a proxy."""
    return _world(request, make_world, trusted_proxies=["10.0.0.1"])


def _client(world: World, address: str) -> TestClient:
    """A client of the same app seen from another address."""
    return TestClient(world.client.app, client=(address, 40000))


def _attempt(client: TestClient, surface: str, user: str, password: str) -> int:
    if surface == "v2":
        return client.get("/v2/", auth=(user, password)).status_code
    if surface == "token":
        return client.get("/auth/token", auth=(user, password)).status_code
    if surface == "api":
        return client.get("/api/v1/me", auth=(user, password)).status_code
    response = client.post(
        "/auth/token", data={"grant_type": "password", "username": user, "password": password}
    )
    return response.status_code


@pytest.mark.parametrize("surface", ["v2", "token", "api", "token-post"])
def test_concurrent_wrong_guesses_are_all_counted_before_any_is_evaluated(
    throttled_world: World, surface: str
) -> None:
    client = _client(throttled_world, "192.0.2.10")
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(lambda i: _attempt(client, surface, "alice", f"wrong-{i}"), range(GUESSES)))
    # Exactly the threshold's worth of guesses were evaluated (401); every other one was refused unseen.
    assert codes.count(401) == THRESHOLD, codes
    assert codes.count(429) == GUESSES - THRESHOLD
    # The right password does not get in from that address now...
    assert _attempt(client, surface, "alice", PASSWORD) == 429
    # ...but another user behind the same address does, administrators included, and alice elsewhere.
    assert _attempt(client, surface, "rw", PASSWORD) == 200
    assert _attempt(client, surface, "admin", "admin-password-1") == 200
    assert _attempt(_client(throttled_world, "198.51.100.7"), surface, "alice", PASSWORD) == 200
    assert throttled_world.auth.throttle.counters.throttled >= GUESSES - THRESHOLD


@pytest.mark.parametrize("surface", ["token", "api"])
def test_concurrent_right_passwords_all_get_in(throttled_world: World, surface: str) -> None:
    """A client's parallel requests each logging in (skopeo pushing layers at once) are not guesses: the
    attempts past the threshold wait for those in flight, which succeed, and get in too."""
    client = _client(throttled_world, "192.0.2.20")
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(lambda _: _attempt(client, surface, "alice", PASSWORD), range(24)))
    assert codes == [200] * 24
    assert throttled_world.auth.throttle.counters.throttled == 0


def test_refused_guesses_are_counted_not_written_one_audit_row_each(throttled_world: World) -> None:
    client = _client(throttled_world, "192.0.2.11")
    for i in range(40):
        client.get("/auth/token", auth=("alice", f"wrong-{i}"))
        client.get("/v2/", auth=(f"nobody{i}", "wrong"))
    events = throttled_world.auth.audit.events(SYSTEM, limit=1000)
    # One lock-out event for alice, none per refused guess.
    assert [e.action for e in events if e.action.startswith("login")] == ["login.lockout"]
    counters = throttled_world.auth.throttle.counters
    assert counters.failures == THRESHOLD + 40 and counters.throttled == 40 - THRESHOLD


PROCESSES = 4
GUESSES_PER_PROCESS = 8


def _guess_in_process(database_url: str, data_dir: str, start: Any, results: Any) -> None:
    settings = Settings(
        data_dir=Path(data_dir),
        database_url=database_url,
        login_throttle_threshold=THRESHOLD,
        login_throttle_base_seconds=300,
    )
    db = Database(settings.effective_database_url)
    auth = build_auth(settings, db)

    def guess(i: int) -> str:
        try:
            auth.authenticator.login("alice", f"wrong-{i}", "192.0.2.20", via="test", sign_in=SignIn.NEVER)
        except Throttled:
            return "throttled"
        except Unauthenticated:
            return "wrong"
        return "in"

    try:
        start.wait()  # every process ready: the guesses really race
        with ThreadPoolExecutor(max_workers=GUESSES_PER_PROCESS) as pool:
            for outcome in pool.map(guess, range(GUESSES_PER_PROCESS)):
                results.put(outcome)
    finally:
        db.close()


def test_concurrent_guesses_from_several_processes(throttled_world: World) -> None:
    settings = throttled_world.settings
    # The fork server imports Dockyard once; each process then starts in a moment.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["dockyard.app"])
    results = context.Queue()
    start = context.Barrier(PROCESSES + 1, timeout=60)
    args = (settings.effective_database_url, str(settings.data_dir), start, results)
    processes = [context.Process(target=_guess_in_process, args=args) for _ in range(PROCESSES)]
    try:
        for process in processes:
            process.start()
        start.wait()
        outcomes = [results.get(timeout=60) for _ in range(PROCESSES * GUESSES_PER_PROCESS)]
        for process in processes:
            process.join(timeout=30)
            assert process.exitcode == 0
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    assert outcomes.count("wrong") == THRESHOLD
    assert outcomes.count("throttled") == PROCESSES * GUESSES_PER_PROCESS - THRESHOLD
    auth = throttled_world.auth.authenticator
    with pytest.raises(Throttled):
        auth.login("alice", PASSWORD, "192.0.2.20", via="test")


def test_a_distributed_guesser_gets_one_guess_per_address_and_cannot_lock_the_owner_out(
    make_world: AppFactory,
) -> None:
    world = make_world(login_throttle_threshold=2, login_throttle_base_seconds=300)
    auth = world.auth.authenticator
    limit = 2 * ACCOUNT_FACTOR
    for i in range(limit):
        with pytest.raises(Unauthenticated):
            auth.login("alice", "wrong", f"203.0.113.{i}", via="test")
    # The account is under attack: an address that failed already gets no second guess...
    with pytest.raises(Throttled):
        auth.login("alice", "wrong", "203.0.113.0", via="test")
    with pytest.raises(Throttled):
        auth.login("alice", PASSWORD, "203.0.113.1", via="test")
    # ...a new address gets one, then none...
    with pytest.raises(Unauthenticated):
        auth.login("alice", "wrong", "203.0.113.200", via="test")
    with pytest.raises(Throttled):
        auth.login("alice", "wrong", "203.0.113.200", via="test")
    # ...and the owner, from an address with a clean record, still gets in.
    assert auth.login("alice", PASSWORD, "198.51.100.1", via="test").name == "alice"


def test_delay_grows_and_a_success_clears_the_address(make_world: AppFactory) -> None:
    world = make_world(
        login_throttle_threshold=2, login_throttle_base_seconds=1, login_throttle_max_seconds=4
    )
    throttle = world.auth.throttle
    blocked = []
    for _ in range(6):
        throttle.failed(throttle.reserve("alice", "192.0.2.1"))
        until = throttle.state("alice", "192.0.2.1").pair.blocked_until
        blocked.append(max(0, round(until - time.time())))
        if until:
            with pytest.raises(Throttled):
                throttle.reserve("alice", "192.0.2.1")
            # Skip the lock-out rather than wait it out.
            _expire(world, "pair:alice|192.0.2.1")
    assert blocked == [0, 1, 2, 4, 4, 4]
    throttle.succeeded(throttle.reserve("alice", "192.0.2.1"))
    assert throttle.state("alice", "192.0.2.1").pair.failures == 0


def _expire(world: World, key: str) -> None:
    with world.auth.throttle.db.write() as conn:
        row = q.lock_login_failures(conn, [key])[key]
        q.save_login_failures(conn, key, q.FailureRow(row.failures, row.last_failure_at, 0.0))


def test_old_counts_are_pruned(make_world: AppFactory) -> None:
    world = make_world(populate=False, login_throttle_threshold=2)
    throttle = world.auth.throttle
    throttle.failed(throttle.reserve("ghost", "192.0.2.1"))
    assert throttle.prune(time.time()) == 0
    assert throttle.prune(time.time() + throttle.memory_seconds + 1) == 2
    assert throttle.state("ghost", "192.0.2.1").pair.failures == 0


@pytest.mark.parametrize(
    ("peer", "forwarded", "seen_as"),
    [
        # An untrusted peer's header is ignored, whatever it says.
        ("192.0.2.50", "198.51.100.1", "192.0.2.50"),
        ("192.0.2.50", "10.0.0.1, 198.51.100.1", "192.0.2.50"),
        # A trusted proxy's is read from the right: the last address that is not a trusted proxy.
        ("10.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.1", "203.0.113.9, 198.51.100.1", "198.51.100.1"),
        ("10.0.0.1", "198.51.100.1, 10.0.0.1", "198.51.100.1"),
        # Garbage stops the walk at the last good address.
        ("10.0.0.1", "198.51.100.1, not-an-ip", "10.0.0.1"),
        ("10.0.0.1", "", "10.0.0.1"),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(
    make_world: AppFactory, peer: str, forwarded: str, seen_as: str
) -> None:
    world = make_world(
        trusted_proxies=["10.0.0.0/30"], login_throttle_threshold=1, login_throttle_base_seconds=300
    )
    client = _client(world, peer)
    assert (
        client.get("/v2/", auth=("alice", "wrong"), headers={"X-Forwarded-For": forwarded}).status_code == 401
    )
    assert world.auth.throttle.state("alice", seen_as).pair.failures == 1


def test_spoofed_forwarded_for_does_not_escape_a_lock_out(throttled_world: World) -> None:
    client = _client(throttled_world, "192.0.2.60")
    for _ in range(THRESHOLD):
        client.get("/v2/", auth=("alice", "wrong"))
    for fake in ("198.51.100.1", "198.51.100.2, 198.51.100.3"):
        response = client.get("/v2/", auth=("alice", PASSWORD), headers={"X-Forwarded-For": fake})
        assert response.status_code == 429


def test_a_trusted_proxy_tells_its_clients_apart(throttled_world: World) -> None:
    proxy = _client(throttled_world, "10.0.0.1")
    for _ in range(THRESHOLD):
        proxy.get("/v2/", auth=("alice", "wrong"), headers={"X-Forwarded-For": "198.51.100.66"})
    locked = proxy.get("/v2/", auth=("alice", PASSWORD), headers={"X-Forwarded-For": "198.51.100.66"})
    assert locked.status_code == 429
    # Another client behind the same proxy is not locked out with the first.
    other = proxy.get("/v2/", auth=("alice", PASSWORD), headers={"X-Forwarded-For": "198.51.100.67"})
    assert other.status_code == 200


def test_trusted_proxies_setting_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an IP address or network"):
        Settings(data_dir=tmp_path, trusted_proxies=["10.0.0.1", "proxy.example"])
    assert Settings(data_dir=tmp_path, trusted_proxies=["10.0.0.0/8", "::1"]).trusted_proxies
