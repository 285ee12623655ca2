"""The permission matrix through HTTP: /v2/ with Basic credentials, /auth/token's access claim, _catalog."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from auth_support import ADMIN_PASSWORD, PASSWORD, World, open_world

# account level -> (user, or None for anonymous; the namespace where the level applies)
SUBJECTS: dict[str, tuple[str | None, str]] = {
    "anonymous": (None, "acme"),
    "authenticated": ("outsider", "acme"),
    "team read-only": ("ro", "acme"),
    "team read-write": ("rw", "acme"),
    "team admin": ("adm", "acme"),
    "organization owner": ("owner", "acme"),
    "namespace owner": ("alice", "alice"),
    "system administrator": ("admin", "acme"),
}
READ = {"pull"}
WRITE = {"pull", "push", "delete"}
# Registry actions allowed: (private, public), anonymous pull off.
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    "anonymous": (set(), set()),
    "authenticated": (set(), READ),
    "team read-only": (READ, READ),
    "team read-write": (WRITE, WRITE),
    "team admin": (WRITE, WRITE),
    "organization owner": (WRITE, WRITE),
    "namespace owner": (WRITE, WRITE),
    "system administrator": (WRITE, WRITE),
}
CASES = [(s, v, a) for s in SUBJECTS for v in ("private", "public") for a in ("pull", "push", "delete")]
NO_MANIFEST = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from argon2 import PasswordHasher

    from dockyard.auth import passwords

    saved = passwords.HASHER
    passwords.HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    world = open_world(tmp_path_factory.mktemp("matrix"))
    yield world
    world.client.__exit__(None, None, None)
    passwords.HASHER = saved


def _auth(user: str | None) -> tuple[str, str] | None:
    if user is None:
        return None
    return (user, ADMIN_PASSWORD if user == "admin" else PASSWORD)


def _request(world: World, user: str | None, action: str, repo: str) -> int:
    auth = _auth(user)
    if action == "pull":
        return world.client.get(f"/v2/{repo}/tags/list", auth=auth).status_code
    if action == "push":
        return world.client.post(f"/v2/{repo}/blobs/uploads/", auth=auth).status_code
    return world.client.delete(f"/v2/{repo}/manifests/{NO_MANIFEST}", auth=auth).status_code


@pytest.mark.parametrize(("subject", "visibility", "action"), CASES)
def test_v2_with_basic_credentials(world: World, subject: str, visibility: str, action: str) -> None:
    user, namespace = SUBJECTS[subject]
    allowed = action in EXPECTED[subject][0 if visibility == "private" else 1]
    status = _request(world, user, action, f"{namespace}/{visibility}")
    if allowed:
        assert status in {200, 202, 404}, status  # 404: the manifest to delete does not exist
    else:
        assert status == (401 if user is None else 403)


@pytest.mark.parametrize(("subject", "visibility"), [(s, v) for s in SUBJECTS for v in ("private", "public")])
def test_token_access_claim_is_the_intersection(world: World, subject: str, visibility: str) -> None:
    user, namespace = SUBJECTS[subject]
    repo = f"{namespace}/{visibility}"
    token = world.token(user, f"repository:{repo}:pull,push,delete")
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    granted = {a for entry in claims["access"] if entry["name"] == repo for a in entry["actions"]}
    assert granted == EXPECTED[subject][0 if visibility == "private" else 1]
    assert claims["sub"] == (user or "")


@pytest.mark.parametrize(("subject", "visibility", "action"), CASES)
def test_v2_with_bearer_tokens(world: World, subject: str, visibility: str, action: str) -> None:
    user, namespace = SUBJECTS[subject]
    repo = f"{namespace}/{visibility}"
    # Starting an upload needs pull and push, as clients ask.
    token = world.token(user, f"repository:{repo}:{'pull,push' if action == 'push' else action}")
    headers = {"Authorization": f"Bearer {token}"}
    allowed = action in EXPECTED[subject][0 if visibility == "private" else 1]
    if action == "pull":
        status = world.client.get(f"/v2/{repo}/tags/list", headers=headers).status_code
    elif action == "push":
        status = world.client.post(f"/v2/{repo}/blobs/uploads/", headers=headers).status_code
    else:
        status = world.client.delete(f"/v2/{repo}/manifests/{NO_MANIFEST}", headers=headers).status_code
    if allowed:
        assert status in {200, 202, 404}
    else:
        assert status == (401 if user is None else 403)


@pytest.mark.parametrize("subject", [s for s in SUBJECTS if s != "anonymous"])
def test_catalog_lists_only_what_the_caller_may_see(world: World, subject: str) -> None:
    user, _ = SUBJECTS[subject]
    response = world.client.get("/v2/_catalog", auth=_auth(user))
    assert response.status_code == 200
    seen = set(response.json()["repositories"])
    expected = {"acme/public", "alice/public"}
    if subject in {"team read-only", "team read-write", "team admin", "organization owner"}:
        expected.add("acme/private")
    if subject == "namespace owner":
        expected.add("alice/private")
    if subject == "system administrator":
        expected |= {"acme/private", "alice/private"}
    assert seen == expected


def test_anonymous_catalog_is_challenged(world: World) -> None:
    response = world.client.get("/v2/_catalog")
    assert response.status_code == 401
    assert 'scope="registry:catalog:*"' in response.headers["www-authenticate"]
