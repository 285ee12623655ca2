"""The token signing keys: ES256 (P-256), one set for the cluster, kept in the database.

A key's id (kid) is its RFC 7638 JWK thumbprint. One key signs; after a rotation the previous one keeps
verifying until every token it signed has expired, then it is deleted. Every replica re-reads the set
every `REFRESH_SECONDS`, and at once (at most every `_UNKNOWN_KID_RELOAD_SECONDS`) when a token names a key
it does not know, so a rotation made anywhere is seen everywhere without a restart.

Private keys are stored as PKCS#8 PEM, encrypted with the `signing_key_passphrase` setting when it is
set (then a copy of the database, or a backup of it, does not give away the keys). Keys found in the
pre-cluster `<data_dir>/keys` directory are imported once, when the database has none.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import Connection

from dockyard.db import keys as q
from dockyard.db.engine import Database, DatabaseReadOnly, DatabaseUnavailable
from dockyard.events.audit import Actor, AuditLog

ALGORITHM = "ES256"
# How stale a replica's copy of the key set may get before signing re-reads it.
REFRESH_SECONDS = 10.0
# A retired key verifies this long past the token lifetime: a replica may sign with it for up to
# REFRESH_SECONDS after the rotation, and verifiers allow clock skew.
_RETIRE_MARGIN_SECONDS = REFRESH_SECONDS + 60
# Bounds the database reads a stream of tokens naming made-up key ids can cause.
_UNKNOWN_KID_RELOAD_SECONDS = 1.0

log = logging.getLogger(__name__)

# The actor of the scheduled rotations (`signing_key_rotation_days`) in the audit log.
ROTATION_ACTOR = "key-rotation"


class KeyRingError(Exception):
    """The stored keys cannot be used (encrypted without a passphrase, wrong passphrase, not EC keys)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public key as a JWK (without kid)."""
    numbers = key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }


def thumbprint(key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 thumbprint: SHA-256 of the canonical JWK members, base64url."""
    canonical = json.dumps(public_jwk(key), sort_keys=True, separators=(",", ":")).encode()
    return _b64(hashlib.sha256(canonical).digest())


@dataclass(frozen=True)
class SigningKey:
    """One key pair and its id."""

    kid: str
    private: ec.EllipticCurvePrivateKey
    created_at: float = 0.0

    @cached_property
    def public(self) -> ec.EllipticCurvePublicKey:
        """The public half (derived once: every verified token asks for it)."""
        return self.private.public_key()


@dataclass(frozen=True)
class Rotation:
    """What a rotation did: the new signing key, and the ids of the older keys it deleted (with prune)."""

    key: SigningKey
    removed: list[str]


class KeyRing:
    """This replica's copy of the cluster's key set: the signing key and every key still verifying."""

    def __init__(
        self,
        db: Database,
        *,
        token_ttl_seconds: float,
        passphrase: bytes | None = None,
        rotation_seconds: float | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
        legacy_dir: Path | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.db = db
        # Where rotations someone asked for are recorded (build_auth gives the cluster's audit log).
        self.audit = audit
        self.retire_after_seconds = token_ttl_seconds + _RETIRE_MARGIN_SECONDS
        self.passphrase = passphrase
        self.rotation_seconds = rotation_seconds
        self.refresh_seconds = refresh_seconds
        self.legacy_dir = legacy_dir
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        self._current = ""
        self._loaded_at = 0.0
        self._unknown_kid_at = 0.0
        self.load()

    @property
    def current(self) -> SigningKey:
        """The key new tokens are signed with (re-read from the database when this copy is stale)."""
        if time.monotonic() - self._loaded_at >= self.refresh_seconds:
            self._refresh()
        return self._keys[self._current]

    def public_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The verification key with this id, if it is known."""
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._unknown_kid_at >= _UNKNOWN_KID_RELOAD_SECONDS:
            # Perhaps another replica rotated the key set: look again.
            self._unknown_kid_at = time.monotonic()
            self._refresh()
            key = self._keys.get(kid)
        return key.public if key else None

    def _refresh(self) -> None:
        try:
            self.load()
        except (DatabaseUnavailable, KeyRingError) as exc:
            # Keep signing and verifying with the keys known: pulls go on while the database is away.
            log.warning("could not re-read the signing keys (%s); keeping the %d known", exc, len(self._keys))
            self._loaded_at = time.monotonic()

    def load(self) -> None:
        """Read the key set, creating the first key (or importing old key files) when there is none,
        and rotating when the signing key is older than `rotation_seconds`."""
        now = time.time()
        with self.db.read() as conn:
            rows = q.live_keys(conn, now)
        if self._needs_change(rows, now):
            try:
                rows = self._change(now)
            except DatabaseReadOnly:
                if not any(row.retired_at is None for row in rows):
                    raise
                # A replica (re)started without quorum still signs, with the key due for rotation.
                log.warning("the signing key is due for rotation, but the database takes no writes")
        self._install(rows)

    def _change(self, now: float) -> list[q.KeyRow]:
        """Create the first key set or rotate, under the key set's lock; the live keys after."""
        with self.db.write() as conn:
            q.lock_key_set(conn)
            # Another replica may have done it while this one waited for the lock.
            rows = q.live_keys(conn, now)
            if self._needs_change(rows, now):
                first = not any(row.retired_at is None for row in rows)
                if not (first and self._import_legacy(conn, now)):
                    kid = self._rotate(conn, now)
                    if not first and self.audit is not None:
                        # The rotation `signing_key_rotation_days` asks for, by whichever replica came first.
                        self.audit.add(conn, "key.rotate", actor=ROTATION_ACTOR, target=kid, pruned=[])
                rows = q.live_keys(conn, now)
        return rows

    def _needs_change(self, rows: list[q.KeyRow], now: float) -> bool:
        current = next((row for row in rows if row.retired_at is None), None)
        if current is None:
            return True
        return bool(self.rotation_seconds) and now - current.created_at >= (self.rotation_seconds or 0)

    def _install(self, rows: list[q.KeyRow]) -> None:
        keys: dict[str, SigningKey] = {}
        current = ""
        for row in rows:
            known = self._keys.get(row.kid)
            keys[row.kid] = known or SigningKey(row.kid, self._decode(row), row.created_at)
            if row.retired_at is None and not current:
                current = row.kid
        with self._lock:
            self._keys, self._current = keys, current
            self._loaded_at = time.monotonic()

    def rotate(self, actor: Actor = None, *, prune: bool = False) -> Rotation:
        """Make a new signing key for the cluster; the previous one verifies until its tokens expire, or
        with `prune` every older key is deleted at once (tokens they signed stop working). Recorded as
        `key.rotate` by `actor` in the same transaction."""
        with self.db.write() as conn:
            q.lock_key_set(conn)
            kid = self._rotate(conn, time.time())
            removed = q.delete_retired(conn) if prune else []
            if self.audit is not None:
                self.audit.add(conn, "key.rotate", actor=actor, target=kid, pruned=removed)
        self.load()
        return Rotation(self._keys[kid], removed)

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set."""
        return {
            "keys": [
                {**public_jwk(key.public), "kid": kid, "use": "sig", "alg": ALGORITHM}
                for kid, key in sorted(self._keys.items())
            ]
        }

    def _rotate(self, conn: Connection, now: float) -> str:
        q.retire_current(conn, now, now + self.retire_after_seconds)
        q.delete_expired(conn, now)
        private = ec.generate_private_key(ec.SECP256R1())
        kid = thumbprint(private.public_key())
        q.add_key(conn, kid, self._encode(private), now, None)
        return kid

    def _import_legacy(self, conn: Connection, now: float) -> bool:
        """Store the keys of `<data_dir>/keys` (before keys lived in the database); True if any."""
        directory = self.legacy_dir
        if directory is None or not directory.is_dir():
            return False
        current_file = directory / "current"
        current = current_file.read_text().strip() if current_file.exists() else ""
        found = {path.stem: self._read_legacy(path) for path in sorted(directory.glob("*.pem"))}
        if current not in found:
            return False
        for kid, private in found.items():
            verify_until = None if kid == current else now + self.retire_after_seconds
            q.add_key(conn, kid, self._encode(private), now, verify_until)
        log.warning("imported %d signing keys from %s into the database; it can go", len(found), directory)
        return True

    @staticmethod
    def _read_legacy(path: Path) -> ec.EllipticCurvePrivateKey:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise KeyRingError(f"{path} is not an EC private key")
        return private

    def _encode(self, private: ec.EllipticCurvePrivateKey) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(self.passphrase)
            if self.passphrase
            else serialization.NoEncryption()
        )
        pkcs8 = serialization.PrivateFormat.PKCS8
        return private.private_bytes(serialization.Encoding.PEM, pkcs8, encryption)

    def _decode(self, row: q.KeyRow) -> ec.EllipticCurvePrivateKey:
        encrypted = row.private_key.startswith(b"-----BEGIN ENCRYPTED")
        if encrypted and not self.passphrase:
            raise KeyRingError("the signing keys are encrypted: set signing_key_passphrase")
        try:
            private = serialization.load_pem_private_key(
                row.private_key, password=self.passphrase if encrypted else None
            )
        except ValueError as exc:
            raise KeyRingError(f"cannot read signing key {row.kid}: wrong signing_key_passphrase?") from exc
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise KeyRingError(f"signing key {row.kid} is not an EC key")
        return private
