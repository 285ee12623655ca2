"""A fresh password for sensitive changes, messages naming the real cause, one audited login per sign-in."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from auth_support import ADMIN_PASSWORD, PASSWORD, SYSTEM, AppFactory, World, push_image

from dockyard.auth.errors import Unauthenticated
from dockyard.auth.identity import Credential, FreshPassword


def _session(world: World, user: str = "alice", password: str = PASSWORD) -> dict[str, str]:
    login = world.client.post("/api/v1/session", json={"username": user, "password": password})
    assert login.status_code == 200
    return {"X-CSRF-Token": login.json()["csrf_token"]}


def _pat(world: World, user: str = "alice", read_only: bool = False) -> str:
    made = world.client.post(
        "/api/v1/me/tokens", json={"name": "t", "read_only": read_only}, auth=(user, PASSWORD)
    )
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


@pytest.mark.parametrize(
    ("proof", "expected"),
    [
        ({}, 401),
        ({"current_password": "wrong-password"}, 401),
        ({"current_password": "user-password-1 "}, 401),
        ({"current_password": ADMIN_PASSWORD}, 401),  # someone else's password proves nothing
        ({"current_password": PASSWORD}, 201),
    ],
)
def test_a_session_needs_the_current_password_to_create_a_token(
    world: World, proof: dict[str, str], expected: int
) -> None:
    csrf = _session(world)
    try:
        made = world.client.post("/api/v1/me/tokens", json={"name": "new", **proof}, headers=csrf)
        assert made.status_code == expected, made.text
        if expected == 401:
            assert made.json()["error"]["field"] == "current_password"
    finally:
        world.client.cookies.clear()
    tokens = world.client.get("/api/v1/me/tokens", auth=("alice", PASSWORD)).json()
    assert len(tokens) == (1 if expected == 201 else 0)


def test_basic_with_the_password_is_proof_enough_but_a_wrong_current_password_is_not(world: World) -> None:
    client = world.client
    assert client.post("/api/v1/me/tokens", json={"name": "a"}, auth=("alice", PASSWORD)).status_code == 201
    wrong = client.post(
        "/api/v1/me/tokens", json={"name": "b", "current_password": "nope"}, auth=("alice", PASSWORD)
    )
    assert wrong.status_code == 401


@pytest.mark.parametrize("path", ["/api/v1/me/tokens", "/api/v1/me/password"])
def test_an_access_token_makes_no_sensitive_change_even_with_the_password(world: World, path: str) -> None:
    token = _pat(world)
    body: dict[str, Any] = {"current_password": PASSWORD}
    body |= {"name": "x"} if path.endswith("tokens") else {"new_password": "another-password-1"}
    for auth in ({"auth": ("alice", token)}, {"headers": {"Authorization": f"Bearer {token}"}}):
        call = world.client.post if path.endswith("tokens") else world.client.put
        assert call(path, json=body, **auth).status_code == 403


def test_guessing_the_current_password_through_a_session_is_throttled(make_world: AppFactory) -> None:
    world = make_world(login_throttle_threshold=3, login_throttle_base_seconds=300)
    csrf = _session(world)
    try:
        codes = [
            world.client.put(
                "/api/v1/me/password",
                json={"current_password": f"guess-{i}", "new_password": "new-password-1"},
                headers=csrf,
            ).status_code
            for i in range(6)
        ]
    finally:
        world.client.cookies.clear()
    assert codes == [401, 401, 401, 429, 429, 429]


def test_a_push_with_a_read_only_token_says_the_token_is_read_only(world: World) -> None:
    token = _pat(world, read_only=True)
    pushed = world.client.post("/v2/alice/private/blobs/uploads/", auth=("alice", token))
    assert pushed.status_code == 403
    assert (
        pushed.json()["errors"][0]["message"]
        == "this access token is read-only: it may not push to alice/private"
    )
    bearer = world.client.get(
        "/auth/token",
        params={"service": world.settings.service, "scope": "repository:alice/private:pull,push"},
        auth=("alice", token),
    ).json()["token"]
    pushed = world.client.post(
        "/v2/alice/private/blobs/uploads/", headers={"Authorization": f"Bearer {bearer}"}
    )
    assert pushed.status_code == 403 and "read-only" in pushed.json()["errors"][0]["message"]
    # The API names the cause and the action in words too.
    changed = world.client.patch(
        "/api/v1/repositories/alice/private", json={"visibility": "public"}, auth=("alice", token)
    )
    assert changed.status_code == 403
    message = changed.json()["error"]["message"]
    assert "read-only" in message and "change the visibility of alice/private" in message


def test_actions_are_named_in_words(world: World) -> None:
    refused = world.client.patch(
        "/api/v1/repositories/acme/private", json={"visibility": "public"}, auth=("rw", PASSWORD)
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "rw may not change the visibility of acme/private"
    pushed = world.client.post("/v2/acme/private/blobs/uploads/", auth=("ro", PASSWORD))
    assert pushed.json()["errors"][0]["message"] == "ro may not push to acme/private"


@pytest.mark.parametrize("surface", ["v2", "token", "api", "session"])
def test_a_deactivated_account_says_so_only_after_the_right_password(world: World, surface: str) -> None:
    world.client.patch("/api/v1/users/alice", json={"is_active": False}, auth=("admin", ADMIN_PASSWORD))

    def attempt(password: str) -> tuple[int, str]:
        if surface == "session":
            response = world.client.post("/api/v1/session", json={"username": "alice", "password": password})
        else:
            path = {"v2": "/v2/", "token": "/auth/token", "api": "/api/v1/me"}[surface]
            response = world.client.get(path, auth=("alice", password))
        return response.status_code, response.text

    status, text = attempt(PASSWORD)
    assert status == 401 and "deactivated" in text
    status, text = attempt("wrong-password")
    assert status == 401 and "deactivated" not in text


def test_a_deactivated_accounts_access_token_says_so(world: World) -> None:
    token = _pat(world)
    world.client.patch("/api/v1/users/alice", json={"is_active": False}, auth=("admin", ADMIN_PASSWORD))
    response = world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and "deactivated" in response.text
    forged = token[:-4] + "AAAA"
    response = world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401 and "deactivated" not in response.text


def _logins(world: World, user: str) -> list[Any]:
    return world.auth.audit.events(SYSTEM, action="login", who=user)


def test_one_login_per_sign_in_not_per_token(world: World) -> None:
    params = {"service": world.settings.service, "scope": "repository:alice/private:pull"}
    for _ in range(5):
        assert world.client.get("/auth/token", params=params, auth=("alice", PASSWORD)).status_code == 200
    assert len(_logins(world, "alice")) == 1
    # `docker login` (a refresh token asked for) is a sign-in of its own; its refreshes are not.
    refresh = world.client.get(
        "/auth/token", params={**params, "offline_token": "true"}, auth=("alice", PASSWORD)
    ).json()["refresh_token"]
    assert len(_logins(world, "alice")) == 2
    for _ in range(3):
        refreshed = world.client.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh, **params}
        )
        assert refreshed.status_code == 200
    assert len(_logins(world, "alice")) == 2
    # Basic on /v2/ and /api/v1 with every request is no sign-in; a browser session is one.
    world.client.get("/v2/", auth=("alice", PASSWORD))
    world.client.get("/api/v1/me", auth=("alice", PASSWORD))
    assert len(_logins(world, "alice")) == 2
    _session(world)
    world.client.cookies.clear()
    assert len(_logins(world, "alice")) == 3


@pytest.mark.parametrize("audit_pulls", [False, True])
def test_pulls_are_audited_only_when_configured(make_world: AppFactory, audit_pulls: bool) -> None:
    world = make_world(audit_pulls=audit_pulls)
    digest = push_image(world, "alice/public", "latest", "alice")
    for reference in ("latest", digest, "sha256:" + "b" * 64):
        world.client.get(f"/v2/alice/public/manifests/{reference}", auth=("alice", PASSWORD))
    # A HEAD checks; it pulls nothing.
    world.client.head("/v2/alice/public/manifests/latest", auth=("alice", PASSWORD))
    events = world.auth.audit.events(SYSTEM, action="registry.pull")
    # Only what was served, with the digest served; the unknown digest was no pull.
    expected = [f"alice/public@{digest}", "alice/public:latest"] if audit_pulls else []
    assert [e.target for e in events] == expected
    assert all(json.loads(e.detail)["digest"] == digest for e in events)
    assert all(e.actor == "alice" and e.address == "testclient" for e in events)


def test_the_services_themselves_refuse_sensitive_changes_without_a_fresh_password(world: World) -> None:
    # Whatever surface calls them (the API, the web UI): a session's identity alone is not enough.
    alice = world.auth.accounts.identity(world.auth.accounts.user("alice").id)
    assert alice is not None
    session = replace(alice, credential=Credential.SESSION)
    with pytest.raises(Unauthenticated, match="current password"):
        world.auth.credentials.create_access_token(session, "x")
    with pytest.raises(Unauthenticated, match="current password"):
        world.auth.accounts.set_password(session, "alice", "another-password-1")
    with pytest.raises(Unauthenticated, match="current password"):
        world.auth.credentials.create_access_token(session, "x", fresh=FreshPassword(alice.user_id + 1))
    fresh = world.auth.authenticator.confirm_password(session, PASSWORD, "192.0.2.1")
    assert fresh is not None
    world.auth.credentials.create_access_token(session, "x", fresh=fresh)
    world.auth.accounts.set_password(session, "alice", "another-password-1", fresh)


def test_an_administrators_session_changes_its_own_password_only_with_the_current_one(world: World) -> None:
    csrf = _session(world, "admin", ADMIN_PASSWORD)
    try:
        own = world.client.patch("/api/v1/users/admin", json={"password": "new-admin-password"}, headers=csrf)
        assert own.status_code == 401
        other = world.client.patch("/api/v1/users/rw", json={"password": "reset-by-admin-1"}, headers=csrf)
        assert other.status_code == 200
    finally:
        world.client.cookies.clear()
    assert world.client.get("/api/v1/me", auth=("admin", ADMIN_PASSWORD)).status_code == 200
