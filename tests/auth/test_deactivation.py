"""Deactivating a user stops every credential of theirs at once: registry tokens already handed out
(which are checked by signature only), access tokens, refresh tokens and sessions. Reactivating gives back
what deactivation does not revoke for good. Changing or resetting a password ends refresh tokens.

The registry token checks read the account at most every `token_account_check_seconds` in each process;
these tests set it to 0 ("at once"), and test the cache's bound on its own."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest
from auth_support import ADMIN_PASSWORD, PASSWORD, SYSTEM, AppFactory, World

from dockyard.auth.identity import FreshPassword
from dockyard.auth.standing import AccountStanding, Standing
from dockyard.config import Settings
from support import DockyardFactory

PULL = "repository:alice/private:pull"
PUBLIC = "/v2/alice/public/tags/list"
DEACTIVATED = "the account alice is deactivated"


@pytest.fixture
def live(make_world: AppFactory) -> World:
    """A world whose registry token checks read the account on every request."""
    return make_world(token_account_check_seconds=0)


def _pull(world: World, authorization: str) -> Any:
    return world.client.get("/v2/alice/private/tags/list", headers={"Authorization": authorization})


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def _deactivate(world: World, active: bool = False) -> None:
    world.auth.accounts.set_active(SYSTEM, "alice", active)


def _refused_as_deactivated(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert DEACTIVATED in response.json()["errors"][0]["message"]
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


def _access_token(world: World, **options: Any) -> str:
    alice = world.auth.accounts.identity(world.auth.accounts.user("alice").id)
    assert alice is not None and alice.user_id is not None
    _, secret = world.auth.credentials.create_access_token(
        alice, "ci", fresh=FreshPassword(alice.user_id), **options
    )
    return secret


def test_a_registry_token_stops_when_its_user_is_deactivated_and_works_again_after(live: World) -> None:
    bearer = "Bearer " + live.token("alice", PULL)
    assert _pull(live, bearer).status_code == 200
    disabled = live.client.patch(
        "/api/v1/users/alice", json={"is_active": False}, auth=("admin", ADMIN_PASSWORD)
    )
    assert disabled.status_code == 200, disabled.text
    _refused_as_deactivated(_pull(live, bearer))
    # Every later request too (a cached signature does not bring it back), and no new token is handed out.
    _refused_as_deactivated(_pull(live, bearer))
    assert live.client.get("/auth/token", auth=("alice", PASSWORD)).status_code == 401
    _deactivate(live, True)
    assert _pull(live, bearer).status_code == 200


def test_a_registry_token_minted_with_an_access_token_stops_too(live: World) -> None:
    secret = _access_token(live)
    minted = live.client.get(
        "/auth/token", params={"service": live.settings.service, "scope": PULL}, auth=("alice", secret)
    )
    bearer = "Bearer " + minted.json()["token"]
    assert _pull(live, bearer).status_code == 200
    _deactivate(live)
    _refused_as_deactivated(_pull(live, bearer))
    # The access token itself, as the password of Basic on /v2/ and as a bearer token on the API.
    _refused_as_deactivated(_pull(live, _basic("alice", secret)))
    api = live.client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 401 and "deactivated" in api.text
    _deactivate(live, True)
    assert _pull(live, bearer).status_code == 200
    assert live.client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_a_deleted_users_registry_token_is_an_invalid_token(live: World) -> None:
    live.auth.accounts.create_user(None, "bob", PASSWORD)
    bearer = {"Authorization": "Bearer " + live.token("bob", "repository:alice/public:pull")}
    assert live.client.get(PUBLIC, headers=bearer).status_code == 200
    live.auth.accounts.delete_account(SYSTEM, "bob")
    response = live.client.get(PUBLIC, headers=bearer)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "no longer exists" in response.json()["errors"][0]["message"]


def test_anonymous_and_other_users_tokens_are_not_affected(make_world: AppFactory) -> None:
    world = make_world(token_account_check_seconds=0, anonymous_pull=True)
    anonymous = world.client.get(
        "/auth/token", params={"service": world.settings.service, "scope": "repository:alice/public:pull"}
    )
    bearer = "Bearer " + anonymous.json()["token"]
    admin = "Bearer " + world.token("admin", PULL)
    _deactivate(world)
    assert (
        world.client.get("/v2/alice/public/tags/list", headers={"Authorization": bearer}).status_code == 200
    )
    assert _pull(world, admin).status_code == 200


def _refresh_token(world: World) -> str:
    response = world.client.get(
        "/auth/token",
        params={"service": world.settings.service, "offline_token": "true", "client_id": "docker"},
        auth=("alice", PASSWORD),
    )
    return str(response.json()["refresh_token"])


def _refresh(world: World, refresh: str) -> Any:
    form = {"grant_type": "refresh_token", "refresh_token": refresh, "service": "dockyard", "scope": PULL}
    return world.client.post("/auth/token", data={**form, "client_id": "docker"})


def test_deactivation_ends_refresh_tokens_for_good(live: World) -> None:
    refresh = _refresh_token(live)
    assert _refresh(live, refresh).status_code == 200
    _deactivate(live)
    assert _refresh(live, refresh).status_code == 401
    # Reactivation lets alice log in again, but her docker clients must log in anew too.
    _deactivate(live, True)
    assert _refresh(live, refresh).status_code == 401
    assert _refresh(live, _refresh_token(live)).status_code == 200


@pytest.mark.parametrize("who", ["herself", "an administrator"])
def test_a_password_change_or_reset_through_the_api_ends_refresh_tokens(live: World, who: str) -> None:
    refresh = _refresh_token(live)
    if who == "herself":
        body = {"current_password": PASSWORD, "new_password": "a-new-password-2"}
        changed = live.client.put("/api/v1/me/password", json=body, auth=("alice", PASSWORD))
    else:
        body = {"password": "a-new-password-2"}
        changed = live.client.patch("/api/v1/users/alice", json=body, auth=("admin", ADMIN_PASSWORD))
    assert changed.status_code in (200, 204), changed.text
    refused = _refresh(live, refresh)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["errors"][0]["message"]


def test_a_session_stops_when_its_user_is_deactivated_for_good(live: World) -> None:
    alice = live.auth.accounts.identity(live.auth.accounts.user("alice").id)
    assert alice is not None
    cookie, _ = live.auth.credentials.create_session(alice)
    live.client.cookies.set("dockyard_session", cookie)
    try:
        assert live.client.get("/api/v1/me").status_code == 200
        assert "Sign out" in live.client.get("/profile").text
        _deactivate(live)
        assert live.client.get("/api/v1/me").status_code == 401
        assert "Sign out" not in live.client.get("/profile").text
        # Reactivation does not bring the session back, as it does not bring refresh tokens back.
        _deactivate(live, True)
        assert live.client.get("/api/v1/me").status_code == 401
    finally:
        live.client.cookies.clear()


def test_the_standing_cache_keeps_an_answer_for_its_window_only(world: World) -> None:
    db, user_id = world.auth.accounts.db, world.auth.accounts.user("alice").id
    cached = AccountStanding(db, ttl_seconds=3600)
    uncached = AccountStanding(db, ttl_seconds=0)
    assert cached.known(user_id) is None
    assert cached.read(user_id) is Standing.ACTIVE
    assert uncached.read(user_id) is Standing.ACTIVE
    _deactivate(world)
    # Within the window the answer stands (the documented bound); a read sees the change.
    assert cached.known(user_id) is Standing.ACTIVE
    assert uncached.known(user_id) is None
    assert cached.read(user_id) is Standing.DEACTIVATED
    assert cached.known(user_id) is Standing.DEACTIVATED
    assert cached.read(10**9) is Standing.GONE


def test_the_standing_cache_is_bounded(world: World) -> None:
    standing = AccountStanding(world.auth.accounts.db, ttl_seconds=3600, capacity=3)
    for user_id in range(1000, 1010):
        standing.read(user_id)
    assert [standing.known(u) for u in range(1000, 1007)] == [None] * 7
    assert [standing.known(u) for u in range(1007, 1010)] == [Standing.GONE] * 3


def test_the_check_window_setting_is_bounded() -> None:
    for value in (-1, 61):
        with pytest.raises(ValueError, match="0 \\(check on every request\\) to 60"):
            Settings(token_account_check_seconds=value)
    assert Settings().token_account_check_seconds == 5


def _fresh_get(url: str, **kwargs: Any) -> httpx.Response:
    # A new connection each time, so the requests spread over the server's worker processes.
    with httpx.Client(timeout=30) as client:
        return client.get(url, **kwargs)


@pytest.mark.e2e
def test_a_live_server_refuses_a_deactivated_users_token_in_every_worker(
    dockyard_server: DockyardFactory,
) -> None:
    server = dockyard_server(
        args=["--workers", "2"],
        env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD, "DOCKYARD_TOKEN_ACCOUNT_CHECK_SECONDS": "1"},
    )
    admin = ("admin", ADMIN_PASSWORD)
    with httpx.Client(base_url=server.url, auth=admin, timeout=30) as api:
        assert api.post("/api/v1/users", json={"name": "alice", "password": PASSWORD}).status_code == 201
        issued = api.get("/auth/token", params={"service": "dockyard"}, auth=("alice", PASSWORD))
        bearer = {"Authorization": f"Bearer {issued.json()['token']}"}
        base = f"{server.url}/v2/"
        assert all(_fresh_get(base, headers=bearer).status_code == 200 for _ in range(4))
        assert api.patch("/api/v1/users/alice", json={"is_active": False}).status_code == 200
        # Within the configured window (1 s here) every worker has looked again.
        deadline = time.monotonic() + 15
        while _fresh_get(base, headers=bearer).status_code != 401:
            assert time.monotonic() < deadline, "the deactivated user's token kept working"
            time.sleep(0.2)
        time.sleep(1.5)
        refused = [_fresh_get(base, headers=bearer) for _ in range(6)]
        assert [r.status_code for r in refused] == [401] * 6
        assert all(DEACTIVATED in r.json()["errors"][0]["message"] for r in refused)
        assert api.patch("/api/v1/users/alice", json={"is_active": True}).status_code == 200
        deadline = time.monotonic() + 15
        while _fresh_get(base, headers=bearer).status_code != 200:
            assert time.monotonic() < deadline, "the reactivated user's token stayed refused"
            time.sleep(0.2)
