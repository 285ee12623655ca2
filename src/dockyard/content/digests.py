"""Content digests: parsing, validation and hashing (sha256 and sha512)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from dockyard.content.errors import DigestInvalid, Unsupported

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")


class Hasher(Protocol):
    """What hashlib objects offer."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...

    def copy(self) -> Hasher: ...


@dataclass(frozen=True)
class Digest:
    """A validated digest such as sha256:e3b0..."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_digest(value: str) -> Digest:
    """Validate a digest string; unknown algorithms are Unsupported, malformed ones DigestInvalid."""
    match = _DIGEST.fullmatch(value)
    if not match:
        raise DigestInvalid(f"invalid digest {value[:200]!r}")
    algorithm, encoded = match.groups()
    length = _HEX_LENGTH.get(algorithm)
    if length is None:
        raise Unsupported(f"digest algorithm {algorithm!r} is not supported (use sha256 or sha512)")
    if len(encoded) != length or not re.fullmatch(r"[a-f0-9]+", encoded):
        raise DigestInvalid(f"invalid {algorithm} digest: expected {length} lowercase hex characters")
    return Digest(algorithm, encoded)


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hash object for a supported algorithm."""
    return hashlib.new(algorithm)


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """The digest string of some bytes."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
