"""Brute-force protection: failed logins per account and per address earn a growing 429 delay."""

from __future__ import annotations

import time
from typing import Any

import pytest
from auth_support import PASSWORD, SYSTEM, World

from dockyard.auth.throttle import LoginThrottle


def test_repeated_failures_for_one_account_are_refused_with_429(make_world: Any) -> None:
    world: World = make_world(login_throttle_threshold=3, login_throttle_base_seconds=2)
    client = world.client
    for _ in range(3):
        assert client.get("/auth/token", auth=("alice", "wrong")).status_code == 401
    refused = client.get("/auth/token", auth=("alice", PASSWORD))
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) in {1, 2}
    # Every surface that checks passwords refuses the same way.
    assert client.get("/v2/", auth=("alice", PASSWORD)).status_code == 429
    api = client.get("/api/v1/me", auth=("alice", PASSWORD))
    assert api.status_code == 429 and api.json()["error"]["code"] == "TOO_MANY_REQUESTS"
    assert client.post("/api/v1/session", json={"username": "alice", "password": PASSWORD}).status_code == 429
    # Another account from the same address is not locked yet (addresses get a higher threshold).
    assert client.get("/auth/token", auth=("rw", PASSWORD)).status_code == 200
    events = world.auth.audit.events(SYSTEM, action="login", who="alice")
    assert {e.outcome for e in events} >= {"failure", "throttled"}


def test_delay_grows_and_success_resets_it(make_world: Any) -> None:
    world: World = make_world(
        login_throttle_threshold=2, login_throttle_base_seconds=1, login_throttle_max_seconds=8
    )
    throttle = world.auth.throttle
    delays = [throttle.failure("alice", None) for _ in range(6)]
    assert delays == [0, 1, 2, 4, 8, 8]
    time.sleep(0.01)
    with pytest.raises(Exception, match="too many failed logins"):
        throttle.check("alice", None)
    throttle.success("alice")
    throttle.check("alice", None)


def test_address_threshold(make_world: Any) -> None:
    world: World = make_world(populate=False, login_throttle_threshold=2, login_throttle_base_seconds=60)
    throttle: LoginThrottle = world.auth.throttle
    for i in range(7):
        throttle.failure(f"user{i}", "192.0.2.1")
    throttle.check("someone", "192.0.2.1")
    throttle.failure("user7", "192.0.2.1")
    with pytest.raises(Exception, match="too many failed logins"):
        throttle.check("someone", "192.0.2.1")
    throttle.check("someone", "192.0.2.2")
