"""Hostile registry tokens are refused with 401 and a challenge; revoked credentials stop at once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from auth_support import PASSWORD, World
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.auth.identity import FreshPassword

REPO = "alice/private"
SCOPE = f"repository:{REPO}:pull"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(world: World, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": world.settings.token_issuer,
        "sub": "alice",
        "aud": world.settings.service,
        "exp": now + 300,
        "nbf": now - 1,
        "iat": now,
        "jti": "x",
        "access": [{"type": "repository", "name": REPO, "actions": ["pull"]}],
        "uid": world.auth.accounts.user("alice").id,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(world: World, claims: dict[str, Any]) -> str:
    key = world.auth.keys.current
    return jwt.encode(claims, key.private, algorithm="ES256", headers={"kid": key.kid})


def _pull(world: World, token: str) -> Any:
    return world.client.get(f"/v2/{REPO}/tags/list", headers={"Authorization": f"Bearer {token}"})


def _refused(world: World, token: str) -> None:
    response = _pull(world, token)
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="http://testserver/auth/token",service="dockyard"')
    assert f'scope="{SCOPE}"' in challenge


def test_a_well_formed_token_works(world: World) -> None:
    assert _pull(world, _signed(world, _claims(world))).status_code == 200


@pytest.mark.parametrize(
    ("label", "changes"),
    [
        (
            "expired",
            {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000, "nbf": int(time.time()) - 4000},
        ),
        ("not yet valid", {"nbf": int(time.time()) + 3600}),
        ("wrong audience", {"aud": "another-registry"}),
        ("wrong issuer", {"iss": "someone-else"}),
        ("no expiry", {"exp": None}),
        ("no audience", {"aud": None}),
    ],
)
def test_bad_claims_are_refused(world: World, label: str, changes: dict[str, Any]) -> None:
    _refused(world, _signed(world, _claims(world, **changes)))


def test_tampered_payload_is_refused(world: World) -> None:
    token = world.token("outsider", "repository:acme/public:pull")
    header, _, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    payload["access"] = [{"type": "repository", "name": REPO, "actions": ["pull", "push"]}]
    forged = f"{header}.{_b64(json.dumps(payload).encode())}.{signature}"
    _refused(world, forged)


def test_alg_none_is_refused(world: World) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": world.auth.keys.current.kid}
    token = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims(world)).encode())}."
    _refused(world, token)


def test_hs256_signed_with_the_public_key_is_refused(world: World) -> None:
    public = world.auth.keys.current.public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": world.auth.keys.current.kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims(world)).encode())}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    _refused(world, f"{signing_input}.{_b64(signature)}")


def test_a_foreign_key_claiming_our_kid_is_refused(world: World) -> None:
    foreign = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        _claims(world), foreign, algorithm="ES256", headers={"kid": world.auth.keys.current.kid}
    )
    _refused(world, token)


def test_unknown_kid_and_garbage_are_refused(world: World) -> None:
    key = world.auth.keys.current
    _refused(world, jwt.encode(_claims(world), key.private, algorithm="ES256", headers={"kid": "nope"}))
    _refused(world, "not-a-token")
    _refused(world, "a.b.c")


def test_a_token_for_another_repository_does_not_open_this_one(world: World) -> None:
    token = world.token("alice", "repository:alice/public:pull")
    response = _pull(world, token)
    # alice may pull her private repository, so she is sent back for a token that covers it.
    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    # An outsider's token for a public repository does not cover the private one, and the policy says no.
    outsider = world.token("outsider", "repository:alice/public:pull")
    assert _pull(world, outsider).status_code == 403


def test_refresh_token_replayed_after_revocation_is_refused(world: World) -> None:
    response = world.client.get(
        "/auth/token",
        params={"service": "dockyard", "offline_token": "true", "client_id": "docker"},
        auth=("alice", PASSWORD),
    )
    refresh = response.json()["refresh_token"]
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "service": "dockyard",
        "client_id": "docker",
    }
    assert world.client.post("/auth/token", data={**form, "scope": SCOPE}).status_code == 200
    # Changing the password ends every docker login (refresh token) of the user.
    world.auth.accounts.set_password(None, "alice", "a-new-password")
    replay = world.client.post("/auth/token", data={**form, "scope": SCOPE})
    assert replay.status_code == 401
    assert replay.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_revoked_access_token_stops_at_once(world: World) -> None:
    alice = world.auth.accounts.identity(world.auth.accounts.user("alice").id)
    assert alice is not None
    view, secret = world.auth.credentials.create_access_token(alice, "ci", fresh=FreshPassword(alice.user_id))
    # As the password of Basic on /v2/, and through a registry token minted with it.
    assert world.client.get(f"/v2/{REPO}/tags/list", auth=("alice", secret)).status_code == 200
    minted = world.token("alice", SCOPE, password=secret)
    assert _pull(world, minted).status_code == 200
    refresh = world.client.get(
        "/auth/token", params={"offline_token": "true"}, auth=("alice", secret)
    ).json()["refresh_token"]

    world.auth.credentials.revoke_access_token(alice, view.public_id)
    assert world.client.get(f"/v2/{REPO}/tags/list", auth=("alice", secret)).status_code == 401
    _refused(world, minted)
    assert world.client.get("/auth/token", params={"scope": SCOPE}, auth=("alice", secret)).status_code == 401
    form = {"grant_type": "refresh_token", "refresh_token": refresh, "scope": SCOPE}
    assert world.client.post("/auth/token", data=form).status_code == 401


def test_a_disabled_user_gets_no_token(world: World) -> None:
    world.auth.accounts.set_active(None, "outsider", False)
    response = world.client.get("/auth/token", params={"scope": SCOPE}, auth=("outsider", PASSWORD))
    assert response.status_code == 401
