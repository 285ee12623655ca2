"""Cache grants: one blob of one repository, for a short time, signed by the registry; nothing else passes."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from dockyard.auth.identity import Identity
from dockyard.auth.keys import KeyRing
from dockyard.auth.tokens import Scope, TokenIssuer
from dockyard.cache.grants import GrantInvalid, issue_grant, verify_grant
from dockyard.db.engine import Database

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def _ring(directory: Path) -> KeyRing:
    """A key set of its own (keys live in a database)."""
    directory.mkdir(parents=True, exist_ok=True)
    db = Database(f"sqlite:///{directory / 'keys.db'}")
    db.migrate()
    return KeyRing(db, token_ttl_seconds=300)


@pytest.fixture
def keys(tmp_path: Path) -> KeyRing:
    return _ring(tmp_path / "keys")


def test_a_grant_opens_its_blob(keys: KeyRing) -> None:
    grant = issue_grant(keys.current, "dockyard", "alice", "acme/app", DIGEST, 60)
    verified = verify_grant(grant, keys.public_key, "acme/app", DIGEST)
    assert (verified.user, verified.repository, verified.digest) == ("alice", "acme/app", DIGEST)


@pytest.mark.parametrize(
    ("repository", "digest"), [("acme/app", OTHER), ("acme/other", DIGEST), ("acme/app/x", DIGEST)]
)
def test_a_grant_opens_no_other_blob(keys: KeyRing, repository: str, digest: str) -> None:
    grant = issue_grant(keys.current, "dockyard", "alice", "acme/app", DIGEST, 60)
    with pytest.raises(GrantInvalid, match="another blob"):
        verify_grant(grant, keys.public_key, repository, digest)


def test_expired_tampered_foreign_and_missing_grants_are_refused(keys: KeyRing, tmp_path: Path) -> None:
    expired = issue_grant(keys.current, "dockyard", "alice", "acme/app", DIGEST, -120)
    header, payload, signature = issue_grant(keys.current, "dockyard", "alice", "acme/app", DIGEST, 60).split(
        "."
    )
    forged_key = _ring(tmp_path / "elsewhere")
    foreign = issue_grant(forged_key.current, "dockyard", "alice", "acme/app", DIGEST, 60)
    hmac = jwt.encode(
        {"aud": "dockyard-cache", "sub": "a", "repo": "acme/app", "digest": DIGEST, "exp": 2**40, "nbf": 0},
        "a-shared-secret-of-32-bytes-or-more",
        algorithm="HS256",
        headers={"kid": keys.current.kid},
    )
    bad = [
        expired,
        f"{header}.{payload}.{signature[::-1]}",
        f"{header}.{payload}x.{signature}",
        foreign,
        hmac,
        "",
        None,
        "a.b.c",
        "x" * 10_000,
    ]
    for grant in bad:
        with pytest.raises(GrantInvalid):
            verify_grant(grant, keys.public_key, "acme/app", DIGEST)


def test_a_registry_token_is_not_a_grant(keys: KeyRing) -> None:
    issuer = TokenIssuer(keys, "dockyard", "dockyard", 300)
    token, _, _ = issuer.issue(
        Identity(user_id=1, name="alice"), [Scope("repository", "acme/app", ("pull",))]
    )
    with pytest.raises(GrantInvalid):
        verify_grant(token, keys.public_key, "acme/app", DIGEST)
