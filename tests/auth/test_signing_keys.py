"""The cluster's signing keys in the database: one set for every replica, rotation seen everywhere,
retired keys verifying until their tokens expire, encryption at rest, and the import of old key files."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from dockyard.auth import keys as keys_module
from dockyard.auth.identity import Identity
from dockyard.auth.keys import KeyRing, KeyRingError, thumbprint
from dockyard.auth.tokens import Scope, TokenInvalid, TokenIssuer
from dockyard.db.engine import Database
from dockyard.db.schema import signing_keys
from dockyard.events.audit import AuditLog
from support.servers import dockyard_executable, environment_without

ALICE = Identity(user_id=7, name="alice")
PULL = [Scope("repository", "alice/app", ("pull",))]
TTL = 300


@pytest.fixture
def url(migrated_url: str) -> str:
    """A freshly migrated database (SQLite and PostgreSQL)."""
    return migrated_url


@pytest.fixture
def databases(url: str) -> Iterator[list[Database]]:
    """Three handles on the one database, as three replicas would have."""
    handles = [Database(url) for _ in range(3)]
    try:
        yield handles
    finally:
        for db in handles:
            db.close()


def _issuer(keys: KeyRing) -> TokenIssuer:
    return TokenIssuer(keys, issuer="dockyard", service="dockyard", ttl_seconds=TTL)


def _stored(db: Database) -> list[tuple[str, bytes, float | None]]:
    with db.read() as conn:
        rows = conn.execute(select(signing_keys.c.kid, signing_keys.c.private_key, signing_keys.c.retired_at))
        return [(r.kid, bytes(r.private_key), r.retired_at) for r in rows]


def test_replicas_share_one_key_set(databases: list[Database]) -> None:
    a, b = (_issuer(KeyRing(db, token_ttl_seconds=TTL)) for db in databases[:2])
    assert a.keys.current.kid == b.keys.current.kid
    token, _, _ = a.issue(ALICE, PULL)
    assert b.verify(token).allows("repository", "alice/app", ["pull"])
    assert len(_stored(databases[0])) == 1


def test_replicas_starting_together_make_one_key(databases: list[Database], url: str) -> None:
    handles = databases + [Database(url) for _ in range(3)]
    start = threading.Barrier(len(handles))
    rings: list[KeyRing] = []
    errors: list[BaseException] = []

    def boot(db: Database) -> None:
        start.wait()
        try:
            rings.append(KeyRing(db, token_ttl_seconds=TTL))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=boot, args=(db,)) for db in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not errors
        assert len({ring.current.kid for ring in rings}) == 1
        assert len(_stored(handles[0])) == 1
    finally:
        for db in handles[3:]:
            db.close()


def test_rotation_is_seen_by_every_replica_without_a_restart(databases: list[Database]) -> None:
    signer = _issuer(KeyRing(databases[0], token_ttl_seconds=TTL, refresh_seconds=0))
    verifier = _issuer(KeyRing(databases[1], token_ttl_seconds=TTL))
    old_token, _, _ = signer.issue(ALICE, PULL)
    old_kid = signer.keys.current.kid
    verifier.verify(old_token)

    rotated = KeyRing(databases[2], token_ttl_seconds=TTL).rotate().key
    assert rotated.kid != old_kid
    # The signer re-reads the set (refresh_seconds=0 here; 10 s by default) and signs with the new key.
    new_token, _, _ = signer.issue(ALICE, PULL)
    assert jwt.get_unverified_header(new_token)["kid"] == rotated.kid
    # The verifier has never seen that key: meeting its kid makes it reload.
    assert verifier.verify(new_token).subject == "alice"
    # The retired key still verifies the tokens it signed.
    assert verifier.verify(old_token).subject == "alice"
    assert {k["kid"] for k in verifier.keys.jwks()["keys"]} == {old_kid, rotated.kid}


def test_a_retired_key_goes_once_its_tokens_have_expired(
    databases: list[Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = KeyRing(databases[0], token_ttl_seconds=TTL)
    old = ring.current.kid
    ring.rotate()
    assert ring.public_key(old) is not None
    later = time.time() + TTL + 120
    monkeypatch.setattr(keys_module.time, "time", lambda: later)
    other = KeyRing(databases[1], token_ttl_seconds=TTL)
    assert other.public_key(old) is None
    assert {kid for kid, _, _ in _stored(databases[0])} == {ring.current.kid, old}
    # The next rotation deletes it for good.
    newest = other.rotate().key
    assert {kid for kid, _, _ in _stored(databases[0])} == {ring.current.kid, newest.kid}


def test_prune_withdraws_old_keys_from_every_replica(databases: list[Database]) -> None:
    a = _issuer(KeyRing(databases[0], token_ttl_seconds=TTL))
    b = _issuer(KeyRing(databases[1], token_ttl_seconds=TTL, refresh_seconds=0))
    token, _, _ = a.issue(ALICE, PULL)
    a.keys.rotate()
    assert b.verify(token).subject == "alice"
    assert a.keys.rotate(prune=True).removed != []
    # b re-reads the set before it next trusts the remembered token.
    b.keys.current  # noqa: B018 (the read refreshes)
    with pytest.raises(TokenInvalid):
        b.verify(token)


def test_automatic_rotation_by_age(databases: list[Database], monkeypatch: pytest.MonkeyPatch) -> None:
    day = 86400.0
    audits = [AuditLog(db, retention_days=30) for db in databases]
    ring = KeyRing(databases[0], token_ttl_seconds=TTL, rotation_seconds=day, audit=audits[0])
    first = ring.current.kid
    assert KeyRing(databases[1], token_ttl_seconds=TTL, rotation_seconds=day).current.kid == first
    later = time.time() + day + 1
    monkeypatch.setattr(keys_module.time, "time", lambda: later)
    rings = [
        KeyRing(db, token_ttl_seconds=TTL, rotation_seconds=day, audit=audit)
        for db, audit in zip(databases, audits, strict=True)
    ]
    assert len({r.current.kid for r in rings}) == 1 and rings[0].current.kid != first
    assert rings[0].public_key(first) is not None  # still verifying
    assert len(_stored(databases[0])) == 2  # one rotation, however many replicas noticed
    # Recorded once, by the scheduled rotation's actor; the first key is no rotation.
    events = audits[0].events(Identity(user_id=0, name="test", is_admin=True), action="key.rotate")
    assert [(e.actor, e.target) for e in events] == [(keys_module.ROTATION_ACTOR, rings[0].current.kid)]


@pytest.mark.parametrize(
    "passphrase", [None, b"wrong-passphrase-0123"], ids=["no-passphrase", "wrong-passphrase"]
)
def test_keys_encrypted_at_rest(databases: list[Database], passphrase: bytes | None) -> None:
    secret = b"a-long-random-passphrase-42"
    ring = KeyRing(databases[0], token_ttl_seconds=TTL, passphrase=secret)
    ((kid, pem, _),) = _stored(databases[0])
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pem, password=None)
    assert (
        KeyRing(databases[1], token_ttl_seconds=TTL, passphrase=secret).current.kid == kid == ring.current.kid
    )
    with pytest.raises(KeyRingError, match="signing_key_passphrase"):
        KeyRing(databases[2], token_ttl_seconds=TTL, passphrase=passphrase)


def _legacy_key(directory: Path) -> ec.EllipticCurvePrivateKey:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (directory / f"{thumbprint(private.public_key())}.pem").write_bytes(pem)
    return private


def test_old_key_files_are_imported_once(databases: list[Database], tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir()
    older, current = _legacy_key(directory), _legacy_key(directory)
    (directory / "current").write_text(thumbprint(current.public_key()))
    # A token signed before the upgrade, by the old current key.
    before = TokenIssuer(
        _StaticRing(thumbprint(current.public_key()), current), "dockyard", "dockyard", TTL
    ).issue(ALICE, PULL)[0]

    ring = KeyRing(databases[0], token_ttl_seconds=TTL, legacy_dir=directory)
    assert ring.current.kid == thumbprint(current.public_key())
    assert ring.public_key(thumbprint(older.public_key())) is not None
    assert _issuer(KeyRing(databases[1], token_ttl_seconds=TTL)).verify(before).subject == "alice"
    # The files are read once: a later start with other files there changes nothing.
    _legacy_key(directory)
    KeyRing(databases[2], token_ttl_seconds=TTL, legacy_dir=directory)
    assert len(_stored(databases[0])) == 2


class _StaticRing(KeyRing):
    """One fixed key, no database: signs the way the file-based key ring did."""

    def __init__(self, kid: str, private: ec.EllipticCurvePrivateKey) -> None:
        self._fixed = keys_module.SigningKey(kid, private)

    @property
    def current(self) -> keys_module.SigningKey:
        return self._fixed


_ISSUE = """
import sys
from dockyard.app import build_auth
from dockyard.auth.identity import Identity
from dockyard.config import Settings
from dockyard.db.engine import Database

settings = Settings(data_dir=sys.argv[1], database_url=sys.argv[2])
db = Database(settings.effective_database_url)
auth = build_auth(settings, db)
print(auth.issuer.issue(Identity(user_id=7, name="alice"), [])[0])
db.close()
"""


def _issue_in_another_process(data_dir: Path, url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _ISSUE, str(data_dir), url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=environment_without("DOCKYARD_"),
    )
    return done.stdout.strip()


def test_tokens_cross_processes_and_a_cli_rotation_reaches_them(
    databases: list[Database], url: str, tmp_path: Path
) -> None:
    here = _issuer(KeyRing(databases[0], token_ttl_seconds=TTL, refresh_seconds=0))
    # Each process has its own data directory: nothing on the node's disk is shared.
    before = _issue_in_another_process(tmp_path / "a", url)
    assert here.verify(before).subject == "alice"
    old_kid = here.keys.current.kid

    rotated = subprocess.run(
        [
            str(dockyard_executable()),
            "admin",
            "rotate-key",
            "--data-dir",
            str(tmp_path / "c"),
            "--database-url",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment_without("DOCKYARD_"),
    )
    assert rotated.returncode == 0, rotated.stderr
    new_kid = here.keys.current.kid
    assert new_kid != old_kid and new_kid in rotated.stdout
    after = _issue_in_another_process(tmp_path / "b", url)
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    assert jwt.get_unverified_header(here.issue(ALICE, [])[0])["kid"] == new_kid
    assert here.verify(after).subject == "alice"
    assert here.verify(before).subject == "alice"
