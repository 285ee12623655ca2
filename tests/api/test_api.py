"""/api/v1: schema and docs, JSON errors naming the field, sessions with CSRF, tokens, and the admin flows."""

from __future__ import annotations

from typing import Any

import pytest
from auth_support import ADMIN_PASSWORD, PASSWORD, World

ADMIN = ("admin", ADMIN_PASSWORD)


def _as(user: str) -> tuple[str, str]:
    return ADMIN if user == "admin" else (user, PASSWORD)


def test_openapi_schema_and_docs_are_served(world: World) -> None:
    schema = world.client.get("/api/v1/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/session", "/me", "/me/tokens", "/users", "/organizations", "/repositories", "/audit"):
        assert path in paths, path
    docs = world.client.get("/api/v1/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "/api/v1/openapi.json" in docs.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x1", "password": "short"}, "password"),
        ({"password": "long-enough-1"}, "name"),
        ({"name": "ok-name", "password": "long-enough-1", "surprise": 1}, "surprise"),
        ({"name": "Bad Name", "password": "long-enough-1"}, "name"),
    ],
)
def test_invalid_input_names_the_field(world: World, body: dict[str, Any], field: str) -> None:
    response = world.client.post("/api/v1/users", json=body, auth=ADMIN)
    assert response.status_code in {400, 422}
    error = response.json()["error"]
    assert error["field"] == field
    assert error["code"] == "INVALID_INPUT"
    assert error["message"]


def test_errors_have_stable_codes(world: World) -> None:
    assert world.client.get("/api/v1/me").json()["error"]["code"] == "UNAUTHORIZED"
    assert world.client.get("/api/v1/me").status_code == 401
    denied = world.client.post("/api/v1/organizations", json={"name": "evil"}, auth=_as("outsider"))
    assert (denied.status_code, denied.json()["error"]["code"]) == (403, "DENIED")
    missing = world.client.get("/api/v1/repositories/nope/nothing", auth=ADMIN)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "NOT_FOUND")
    taken = world.client.post("/api/v1/users", json={"name": "alice", "password": "whatever-123"}, auth=ADMIN)
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "CONFLICT")
    bad = world.client.get("/api/v1/me", auth=("alice", "wrong"))
    assert bad.status_code == 401


def test_session_cookie_requires_csrf_for_unsafe_methods(world: World) -> None:
    client = world.client
    login = client.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    assert login.status_code == 200
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    csrf = login.json()["csrf_token"]
    try:
        assert client.get("/api/v1/me").json()["name"] == "alice"
        refused = client.post("/api/v1/me/tokens", json={"name": "x"})
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["error"]["message"]
        wrong = client.post("/api/v1/me/tokens", json={"name": "x"}, headers={"X-CSRF-Token": "forged"})
        assert wrong.status_code == 403
        # A session proves no password: creating a token asks for it afresh.
        body = {"name": "x", "current_password": PASSWORD}
        made = client.post("/api/v1/me/tokens", json=body, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201
        assert client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert client.get("/api/v1/me").status_code == 401
    finally:
        client.cookies.clear()


def test_secure_cookie_behind_https_external_url(make_world: Any) -> None:
    world = make_world(external_url="https://registry.example.test")
    login = world.client.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    assert "secure" in login.headers["set-cookie"].lower()


def test_access_tokens_lifecycle(world: World) -> None:
    client = world.client
    created = client.post(
        "/api/v1/me/tokens", json={"name": "ci", "read_only": True, "expires_in_days": 30}, auth=_as("alice")
    )
    assert created.status_code == 201
    body = created.json()
    secret, token_id = body["token"], body["id"]
    assert body["read_only"] is True and body["expires_at"] is not None
    # Shown once: the list never carries the secret.
    listed = client.get("/api/v1/me/tokens", auth=_as("alice")).json()
    assert [t["id"] for t in listed] == [token_id] and "token" not in listed[0]
    # Usable as a password (Basic) and as a bearer on the API; read-only means no changes.
    assert client.get("/api/v1/me", auth=("alice", secret)).json()["read_only"] is True
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/me", headers=bearer).json()["via_access_token"] is True
    assert client.post("/api/v1/repositories", json={"name": "alice/new"}, headers=bearer).status_code == 403
    assert client.get("/v2/alice/private/tags/list", auth=("alice", secret)).status_code == 200
    assert client.post("/v2/alice/private/blobs/uploads/", auth=("alice", secret)).status_code == 403
    last_used = client.get("/api/v1/me/tokens", auth=_as("alice")).json()[0]["last_used_at"]
    assert last_used is not None
    # A token cannot mint tokens; someone else cannot revoke it.
    assert client.post("/api/v1/me/tokens", json={"name": "y"}, headers=bearer).status_code == 403
    assert client.delete(f"/api/v1/me/tokens/{token_id}", auth=_as("outsider")).status_code == 404
    revoked = client.delete(f"/api/v1/me/tokens/{token_id}", auth=_as("alice"))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert client.get("/api/v1/me", headers=bearer).status_code == 401
    assert client.get("/v2/alice/private/tags/list", auth=("alice", secret)).status_code == 401


def test_administrator_flow_done_when(world: World) -> None:
    """Org, team, private repository, read-write grant: the member pushes, an outsider sees nothing."""
    client = world.client
    assert (
        client.post("/api/v1/users", json={"name": "dev", "password": PASSWORD}, auth=ADMIN).status_code
        == 201
    )
    assert client.post("/api/v1/organizations", json={"name": "shipyard"}, auth=ADMIN).status_code == 201
    assert (
        client.post("/api/v1/organizations/shipyard/teams", json={"name": "devs"}, auth=ADMIN).status_code
        == 201
    )
    assert client.put("/api/v1/organizations/shipyard/teams/devs/members/dev", auth=ADMIN).status_code == 204
    repo = client.post("/api/v1/repositories", json={"name": "shipyard/app"}, auth=ADMIN)
    assert repo.status_code == 201 and repo.json()["visibility"] == "private"
    grant = client.put(
        "/api/v1/organizations/shipyard/teams/devs/repositories/shipyard/app",
        json={"level": "read-write"},
        auth=ADMIN,
    )
    assert grant.status_code == 204
    assert client.get("/api/v1/repository-grants/shipyard/app", auth=ADMIN).json() == [
        {"repository": "shipyard/app", "team": "devs", "level": "read-write"}
    ]
    team = client.get("/api/v1/organizations/shipyard/teams/devs", auth=_as("dev")).json()
    assert team["name"] == "devs" and team["namespace_access"] is None
    members = client.get("/api/v1/organizations/shipyard/teams/devs/members", auth=_as("dev"))
    assert members.json() == ["dev"]
    # The member may push; the outsider may neither pull nor see.
    assert client.post("/v2/shipyard/app/blobs/uploads/", auth=("dev", PASSWORD)).status_code == 202
    assert client.get("/v2/shipyard/app/tags/list", auth=_as("outsider")).status_code == 403
    assert "shipyard/app" not in client.get("/v2/_catalog", auth=_as("outsider")).json()["repositories"]
    assert client.get("/api/v1/repositories/shipyard/app", auth=_as("outsider")).status_code == 404
    assert "shipyard/app" in [
        r["name"] for r in client.get("/api/v1/repositories", auth=("dev", PASSWORD)).json()
    ]
    # read-write does not include administration of the repository.
    assert (
        client.patch(
            "/api/v1/repositories/shipyard/app", json={"visibility": "public"}, auth=("dev", PASSWORD)
        ).status_code
        == 403
    )


# Admin-level actions through HTTP: (user, repository, allowed)
ADMIN_ACTIONS = [
    ("outsider", "acme/public", False),
    ("ro", "acme/private", False),
    ("rw", "acme/private", False),
    ("adm", "acme/private", True),
    ("owner", "acme/private", True),
    ("alice", "alice/private", True),
    ("admin", "acme/private", True),
]


@pytest.mark.parametrize(("user", "repo", "allowed"), ADMIN_ACTIONS)
def test_repository_administration_matrix(world: World, user: str, repo: str, allowed: bool) -> None:
    client = world.client
    edit = client.patch(f"/api/v1/repositories/{repo}", json={"description": "hello"}, auth=_as(user))
    visibility = client.patch(f"/api/v1/repositories/{repo}", json={"visibility": "private"}, auth=_as(user))
    grants = client.get(f"/api/v1/repository-grants/{repo}", auth=_as(user))
    for response in (edit, visibility, grants):
        assert (response.status_code == 200) is allowed, response.text
    if not allowed:
        assert edit.status_code in {403, 404}
    # Deletion last, on a repository made for it.
    doomed = f"{repo.split('/')[0]}/doomed-{user}"
    assert world.client.post("/api/v1/repositories", json={"name": doomed}, auth=ADMIN).status_code == 201
    if repo.startswith("acme/"):
        for team in ("readers", "writers", "admins"):
            level = {"readers": "read-only", "writers": "read-write", "admins": "admin"}[team]
            path = f"/api/v1/organizations/acme/teams/{team}/repositories/{doomed}"
            assert client.put(path, json={"level": level}, auth=ADMIN).status_code == 204
    deleted = client.delete(f"/api/v1/repositories/{doomed}", auth=_as(user))
    assert (deleted.status_code == 204) is allowed, deleted.text


def test_user_administration(world: World) -> None:
    client = world.client
    assert client.get("/api/v1/users", auth=_as("alice")).status_code == 403
    names = [u["name"] for u in client.get("/api/v1/users", auth=ADMIN).json()]
    assert "alice" in names and "admin" in names
    made = client.patch("/api/v1/users/alice", json={"is_admin": True}, auth=ADMIN)
    assert made.json()["is_admin"] is True
    assert client.get("/api/v1/users", auth=_as("alice")).status_code == 200
    assert (
        client.patch("/api/v1/users/alice", json={"is_admin": False}, auth=ADMIN).json()["is_admin"] is False
    )
    reset = client.patch("/api/v1/users/outsider", json={"password": "reset-password-1"}, auth=ADMIN)
    assert reset.status_code == 200
    assert client.get("/api/v1/me", auth=("outsider", "reset-password-1")).status_code == 200
    disabled = client.patch("/api/v1/users/outsider", json={"is_active": False}, auth=ADMIN)
    assert disabled.json()["is_active"] is False
    assert client.get("/api/v1/me", auth=("outsider", "reset-password-1")).status_code == 401
    last = client.patch("/api/v1/users/admin", json={"is_admin": False}, auth=ADMIN)
    assert last.status_code == 409 and last.json()["error"]["field"] == "is_admin"


def test_me_settings_and_password(world: World) -> None:
    client = world.client
    assert (
        client.patch("/api/v1/me", json={"full_name": "Alice A."}, auth=_as("alice")).json()["full_name"]
        == "Alice A."
    )
    wrong = client.put(
        "/api/v1/me/password",
        json={"current_password": "nope", "new_password": "new-password-9"},
        auth=_as("alice"),
    )
    assert wrong.status_code == 401
    ok = client.put(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "new-password-9"},
        auth=_as("alice"),
    )
    assert ok.status_code == 204
    assert client.get("/api/v1/me", auth=("alice", "new-password-9")).status_code == 200


def test_organization_owner_manages_teams_but_not_other_orgs(world: World) -> None:
    client = world.client
    owner = _as("owner")
    assert (
        client.post("/api/v1/organizations/acme/teams", json={"name": "ops"}, auth=owner).status_code == 201
    )
    assert client.put("/api/v1/organizations/acme/teams/ops/members/alice", auth=owner).status_code == 204
    assert (
        client.put(
            "/api/v1/organizations/acme/teams/ops/namespace-access", json={"level": "read-write"}, auth=owner
        )
    ).status_code == 204
    # alice can now create repositories in acme by pushing (namespace grant read-write).
    assert client.post("/v2/acme/made-by-push/blobs/uploads/", auth=_as("alice")).status_code == 202
    assert (
        client.get("/api/v1/repositories/acme/made-by-push", auth=_as("alice")).json()["visibility"]
        == "private"
    )
    assert (
        client.post("/api/v1/organizations/acme/teams", json={"name": "x"}, auth=_as("rw")).status_code == 403
    )
    bad_level = client.put(
        "/api/v1/organizations/acme/teams/ops/namespace-access", json={"level": "god"}, auth=owner
    )
    assert bad_level.status_code == 422 and bad_level.json()["error"]["field"] == "level"


def test_accounts_holding_repositories_cannot_be_deleted(world: World) -> None:
    client = world.client
    refused = client.delete("/api/v1/users/alice", auth=ADMIN)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["field"] == "name" and "alice/private" in error["message"]
    assert client.delete("/api/v1/organizations/acme", auth=ADMIN).status_code == 409
    assert client.delete("/api/v1/users/alice", auth=_as("alice")).status_code == 403
    for repo in ("alice/private", "alice/public"):
        assert client.delete(f"/api/v1/repositories/{repo}", auth=ADMIN).status_code == 204
    assert client.delete("/api/v1/users/alice", auth=ADMIN).status_code == 204
    assert client.delete("/api/v1/users/outsider", auth=ADMIN).status_code == 204
    # A new account of the same name starts with an empty namespace.
    assert (
        client.post("/api/v1/users", json={"name": "alice", "password": PASSWORD}, auth=ADMIN).status_code
        == 201
    )
    listed = client.get("/api/v1/repositories", params={"namespace": "alice"}, auth=_as("alice"))
    assert listed.status_code == 200 and listed.json() == []
