"""Verified registry tokens are remembered until they expire, and never past a key's removal."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.auth import tokens
from dockyard.auth.identity import Identity
from dockyard.auth.keys import KeyRing
from dockyard.auth.tokens import LEEWAY_SECONDS, Scope, TokenInvalid, TokenIssuer
from dockyard.db.engine import Database

ALICE = Identity(user_id=7, name="alice")
PULL = [Scope("repository", "alice/app", ("pull",))]


def _issuer(tmp_path: Path) -> TokenIssuer:
    db = Database(f"sqlite:///{tmp_path / 'keys.db'}")
    db.migrate()
    keys = KeyRing(db, token_ttl_seconds=300)
    return TokenIssuer(keys, issuer="dockyard", service="dockyard", ttl_seconds=300)


def test_a_verified_token_is_remembered_with_its_claims(tmp_path: Path) -> None:
    issuer = _issuer(tmp_path)
    token, _, _ = issuer.issue(ALICE, PULL)
    assert issuer.already_verified(token) is None
    claims = issuer.verify(token)
    assert issuer.already_verified(token) == claims
    assert claims.allows("repository", "alice/app", ["pull"])


def test_a_remembered_token_is_forgotten_once_it_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer = _issuer(tmp_path)
    token, expires_in, issued_at = issuer.issue(ALICE, PULL)
    issuer.verify(token)
    later = issued_at + expires_in + LEEWAY_SECONDS + 1
    monkeypatch.setattr(tokens.time, "time", lambda: later)
    assert issuer.already_verified(token) is None


def test_a_remembered_token_dies_with_its_pruned_key(tmp_path: Path) -> None:
    issuer = _issuer(tmp_path)
    token, _, _ = issuer.issue(ALICE, PULL)
    issuer.verify(token)
    issuer.keys.rotate()
    assert issuer.already_verified(token) is not None
    issuer.keys.rotate(prune=True)
    assert issuer.already_verified(token) is None
    with pytest.raises(TokenInvalid):
        issuer.verify(token)


def test_a_tampered_token_is_not_taken_from_memory(tmp_path: Path) -> None:
    issuer = _issuer(tmp_path)
    token, _, _ = issuer.issue(ALICE, PULL)
    issuer.verify(token)
    head, payload, signature = token.split(".")
    forged = ".".join([head, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")])
    assert issuer.already_verified(forged) is None
    with pytest.raises(TokenInvalid):
        issuer.verify(forged)
