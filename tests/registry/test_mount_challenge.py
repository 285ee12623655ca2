"""A cross-repository mount challenges for pull on its source, so one token lets the mount succeed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from registry_support import error_codes, guarded, push_blob, registry_token, sha256
from starlette.testclient import TestClient

DATA = b"a layer worth mounting" * 50


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """Access control on: alice owns alice/*, bob owns bob/*; each has a blob in a private repository."""
    with guarded(tmp_path / "data", ["alice", "bob"]) as test_client:
        for user in ("alice", "bob"):
            token = _token(test_client, user, [f"repository:{user}/source:push,pull"])
            test_client.headers["Authorization"] = f"Bearer {token}"
            push_blob(test_client, f"{user}/source", DATA + user.encode())
            del test_client.headers["Authorization"]
        yield test_client


def _token(client: TestClient, user: str, scopes: list[str]) -> str:
    return registry_token(client, user, scopes)


def _challenged_scopes(header: str) -> list[str]:
    """The scopes of a Bearer challenge, split on spaces as Docker's and containerd's clients do."""
    match = re.search(r'scope="([^"]*)"', header)
    assert match, header
    return match[1].split(" ")


def _mount(
    client: TestClient, target: str, digest: str, source: str, token: str | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(
        f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": source}, headers=headers
    )


def test_token_for_exactly_the_challenged_scopes_mounts(client: TestClient) -> None:
    digest = sha256(DATA + b"alice")
    challenge = _mount(client, "alice/target", digest, "alice/source")
    assert challenge.status_code == 401
    assert error_codes(challenge) == ["UNAUTHORIZED"]
    scopes = _challenged_scopes(challenge.headers["WWW-Authenticate"])
    assert sorted(scopes) == ["repository:alice/source:pull", "repository:alice/target:pull,push"]
    token = _token(client, "alice", scopes)
    mounted = _mount(client, "alice/target", digest, "alice/source", token)
    assert mounted.status_code == 201, mounted.text
    assert mounted.headers["Location"] == f"/v2/alice/target/blobs/{digest}"
    pulled = client.get(f"/v2/alice/target/blobs/{digest}", headers={"Authorization": f"Bearer {token}"})
    assert pulled.content == DATA + b"alice"


def test_tokens_that_do_not_cover_the_source(client: TestClient) -> None:
    """Not the target either: challenged again, for both. The target only: an ordinary upload."""
    digest = sha256(DATA + b"alice")
    cases = (("repository:alice/elsewhere:pull,push", 401), ("repository:alice/target:pull,push", 202))
    for scope, status in cases:
        response = _mount(client, "alice/target", digest, "alice/source", _token(client, "alice", [scope]))
        assert response.status_code == status
        if status == 401:
            challenge = response.headers["WWW-Authenticate"]
            assert 'error="insufficient_scope"' in challenge
            assert "repository:alice/source:pull" in _challenged_scopes(challenge)
        else:
            assert "/blobs/uploads/" in response.headers["Location"]


def test_a_source_the_caller_cannot_read_is_never_mounted(client: TestClient) -> None:
    """Bob's private blob: alice asks for exactly the challenged scopes, gets no pull on it, uploads."""
    digest = sha256(DATA + b"bob")
    challenge = _mount(client, "alice/target", digest, "bob/source")
    scopes = _challenged_scopes(challenge.headers["WWW-Authenticate"])
    assert "repository:bob/source:pull" in scopes
    token = _token(client, "alice", scopes)
    response = _mount(client, "alice/target", digest, "bob/source", token)
    assert response.status_code == 202
    headers = {"Authorization": f"Bearer {token}"}
    assert client.head(f"/v2/alice/target/blobs/{digest}", headers=headers).status_code == 404


def test_mount_from_the_same_repository_asks_for_no_extra_scope(client: TestClient) -> None:
    challenge = _mount(client, "alice/source", sha256(DATA + b"alice"), "alice/source")
    assert _challenged_scopes(challenge.headers["WWW-Authenticate"]) == ["repository:alice/source:pull,push"]


@pytest.mark.parametrize("source", ["UPPER", "a//b", "x" * 300, "a\nb"])
def test_an_invalid_source_is_refused_before_any_challenge(client: TestClient, source: str) -> None:
    response = _mount(client, "alice/target", sha256(b"x"), source)
    assert response.status_code == 400
    assert error_codes(response) == ["NAME_INVALID"]
