"""The token signing keys: ES256 (P-256), kept in <data_dir>/keys with mode 0600, rotated without downtime.

Each key is `<kid>.pem`, where kid is the key's RFC 7638 JWK thumbprint. `current` names the signing key;
every other key file stays valid for verification until it is pruned, so tokens signed before a rotation
keep working until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ES256"
_CURRENT = "current"


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

    @cached_property
    def public(self) -> ec.EllipticCurvePublicKey:
        """The public half (derived once: every verified token asks for it)."""
        return self.private.public_key()


class KeyRing:
    """The signing key and every key still accepted for verification."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        self._current = ""
        self._loaded_at = 0.0
        self.load()

    @property
    def current(self) -> SigningKey:
        """The key new tokens are signed with."""
        return self._keys[self._current]

    def public_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The verification key with this id, if it is known."""
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._loaded_at > 5:
            # Perhaps `dockyard admin rotate-key` ran in another process; look again, at most every 5 s.
            self.load()
            key = self._keys.get(kid)
        return key.public if key else None

    def load(self) -> None:
        """Read the keys from disk, generating the first one when there is none."""
        with self._lock:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            keys = {}
            for path in sorted(self.directory.glob("*.pem")):
                private = serialization.load_pem_private_key(path.read_bytes(), password=None)
                if not isinstance(private, ec.EllipticCurvePrivateKey):
                    raise ValueError(f"{path} is not an EC private key")
                keys[path.stem] = SigningKey(path.stem, private)
            current_file = self.directory / _CURRENT
            current = current_file.read_text().strip() if current_file.exists() else ""
            if current not in keys:
                key = self._generate()
                keys[key.kid] = key
                current = key.kid
            self._keys, self._current = keys, current
            self._loaded_at = time.monotonic()

    def rotate(self) -> SigningKey:
        """Make a new signing key; older keys still verify until pruned."""
        with self._lock:
            key = self._generate()
            self._keys[key.kid] = key
            self._current = key.kid
            return key

    def prune(self) -> list[str]:
        """Delete every key but the current one; returns the ids removed."""
        with self._lock:
            removed = [kid for kid in self._keys if kid != self._current]
            for kid in removed:
                (self.directory / f"{kid}.pem").unlink(missing_ok=True)
                del self._keys[kid]
            return removed

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set."""
        return {
            "keys": [
                {**public_jwk(key.public), "kid": kid, "use": "sig", "alg": ALGORITHM}
                for kid, key in sorted(self._keys.items())
            ]
        }

    def _generate(self) -> SigningKey:
        private = ec.generate_private_key(ec.SECP256R1())
        kid = thumbprint(private.public_key())
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(self.directory / f"{kid}.pem", pem)
        _write_private(self.directory / _CURRENT, kid.encode())
        return SigningKey(kid, private)


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start and renamed into place, so no reader sees a partial or open file.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
