"""/auth/token as real clients call it (see FIELD-NOTES), the challenge, the JWKS and key rotation."""

from __future__ import annotations

import base64
import json
import stat
from typing import Any

import jwt
from auth_support import PASSWORD, World

from dockyard.auth.keys import thumbprint


def _claims(token: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==")))


def _access(token: str) -> dict[str, set[str]]:
    return {entry["name"]: set(entry["actions"]) for entry in _claims(token)["access"]}


def test_v2_challenge_names_realm_service_and_scope(world: World) -> None:
    base = world.client.get("/v2/")
    assert base.status_code == 401
    assert (
        base.headers["www-authenticate"] == 'Bearer realm="http://testserver/auth/token",service="dockyard"'
    )
    pull = world.client.get("/v2/acme/private/manifests/latest")
    assert pull.headers["www-authenticate"] == (
        'Bearer realm="http://testserver/auth/token",service="dockyard",scope="repository:acme/private:pull"'
    )


def test_realm_uses_external_url(make_world: Any) -> None:
    world = make_world(populate=False, external_url="https://registry.example.test/")
    assert (
        world.client.get("/v2/")
        .headers["www-authenticate"]
        .startswith('Bearer realm="https://registry.example.test/auth/token"')
    )


def test_skopeo_style_get_with_repeated_scopes(world: World) -> None:
    response = world.client.get(
        "/auth/token",
        params={
            "account": "rw",
            "service": "dockyard",
            "scope": [
                "repository:acme/private:pull,push",
                "repository:alice/private:pull",
                "repository:acme/public:*",
            ],
        },
        auth=("rw", PASSWORD),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert body["issued_at"].endswith("Z")
    assert "refresh_token" not in body
    assert _access(body["token"]) == {
        "acme/private": {"pull", "push"},
        "acme/public": {"pull", "push", "delete"},
    }
    assert response.headers["cache-control"] == "no-store"


def test_docker_login_then_refresh_with_space_joined_scopes(world: World) -> None:
    login = world.client.get(
        "/auth/token",
        params={"account": "rw", "client_id": "docker", "offline_token": "true", "service": "dockyard"},
        auth=("rw", PASSWORD),
    )
    assert login.status_code == 200
    refresh = login.json()["refresh_token"]
    assert refresh.startswith("dyr_")
    response = world.client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": "dockyard",
            "client_id": "docker",
            "scope": "repository:acme/private:pull,push repository:acme/public:pull",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert _access(body["access_token"]) == {"acme/private": {"pull", "push"}, "acme/public": {"pull"}}
    assert body["scope"] == "repository:acme/private:pull,push repository:acme/public:pull"


def test_containerd_style_password_grant(world: World) -> None:
    response = world.client.post(
        "/auth/token",
        data={
            "grant_type": "password",
            "username": "ro",
            "password": PASSWORD,
            "service": "dockyard",
            "client_id": "containerd-client",
            "access_type": "offline",
            "scope": "repository:acme/private:pull,push",
        },
    )
    assert response.status_code == 200
    assert _access(response.json()["access_token"]) == {"acme/private": {"pull"}}
    assert response.json()["refresh_token"].startswith("dyr_")


def test_anonymous_token_holds_only_what_anonymous_may(make_world: Any) -> None:
    closed = make_world()
    token = closed.client.get("/auth/token", params={"scope": "repository:acme/public:pull"}).json()["token"]
    assert _access(token) == {}
    assert _claims(token)["sub"] == ""
    open_ = make_world(anonymous_pull=True)
    token = open_.client.get(
        "/auth/token", params={"scope": ["repository:acme/public:pull,push", "repository:acme/private:pull"]}
    ).json()["token"]
    assert _access(token) == {"acme/public": {"pull"}}
    headers = {"Authorization": f"Bearer {token}"}
    assert open_.client.get("/v2/acme/public/tags/list", headers=headers).status_code == 200
    assert open_.client.get("/v2/acme/private/tags/list", headers=headers).status_code == 401
    # Offline tokens are for users only.
    assert "refresh_token" not in open_.client.get("/auth/token", params={"offline_token": "true"}).json()


def test_bad_requests(world: World) -> None:
    bad_password = world.client.get(
        "/auth/token", params={"scope": "repository:a/b:pull"}, auth=("rw", "nope")
    )
    assert bad_password.status_code == 401
    assert world.client.get("/auth/token", params={"service": "other"}).status_code == 400
    assert world.client.get("/auth/token", params={"scope": "nonsense"}).status_code == 400
    assert world.client.post("/auth/token", data={"grant_type": "client_credentials"}).status_code == 400
    assert (
        world.client.post("/auth/token", data={"grant_type": "password", "username": "rw"}).status_code == 400
    )
    refresh = world.client.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": "dyr_x"})
    assert refresh.status_code == 401
    # An invalid repository name is simply not granted.
    token = world.token("rw", "repository:Not_Valid:pull")
    assert _access(token) == {}


def test_catalog_scope(world: World) -> None:
    token = world.token("outsider", "registry:catalog:*")
    assert _claims(token)["access"] == [{"type": "registry", "name": "catalog", "actions": ["*"]}]
    listing = world.client.get("/v2/_catalog", headers={"Authorization": f"Bearer {token}"})
    assert listing.json() == {"repositories": ["acme/public", "alice/public"]}


def test_jwks_publishes_the_signing_key_and_rotation_keeps_old_tokens_valid(world: World) -> None:
    keys = world.auth.keys
    old_token = world.token("alice", "repository:alice/private:pull")
    jwks = world.client.get("/auth/jwks.json").json()
    assert [k["kid"] for k in jwks["keys"]] == [keys.current.kid]
    assert keys.current.kid == thumbprint(keys.current.public)
    # Anyone holding the JWKS can verify a token.
    public = jwt.PyJWK(jwks["keys"][0]).key
    decoded = jwt.decode(old_token, public, algorithms=["ES256"], audience="dockyard", issuer="dockyard")
    assert decoded["sub"] == "alice"

    new = keys.rotate().key
    assert jwt.get_unverified_header(world.token("alice"))["kid"] == new.kid
    assert {k["kid"] for k in world.client.get("/auth/jwks.json").json()["keys"]} == {
        new.kid,
        decoded_kid(old_token),
    }
    headers = {"Authorization": f"Bearer {old_token}"}
    assert world.client.get("/v2/alice/private/tags/list", headers=headers).status_code == 200
    keys.rotate(prune=True)
    assert world.client.get("/v2/alice/private/tags/list", headers=headers).status_code == 401


def decoded_kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_the_database_holding_the_keys_is_private(world: World) -> None:
    files = list(world.settings.data_dir.glob("dockyard.db*"))
    assert world.settings.data_dir / "dockyard.db" in files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
