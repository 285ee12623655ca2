"""SHA-256 and SHA-512 whose running state can be saved and restored, so any replica continues a hash.

hashlib cannot export its state. OpenSSL's low-level SHA256_* / SHA512_* functions work on plain structs
(SHA256_CTX, SHA512_CTX) that hold the whole state, so we drive them through ctypes and store the struct's
bytes. Same code as hashlib underneath (OpenSSL's assembly), and ctypes drops the GIL during each call.

A saved state is `MAGIC + algorithm + b":" + struct bytes`. Restoring checks its length, its block
position and the byte count it encodes against what the caller expects, and refuses anything else:
the caller then re-hashes from storage. Where libcrypto or those functions are missing, or the layout is
not the one expected (a self-test at import), `available()` is False and callers keep using hashlib.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import struct
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["ResumableHash", "available", "restore"]

MAGIC = b"dockyard-hash-1:" + sys.byteorder.encode() + b":"


@dataclass(frozen=True)
class _Layout:
    """Where an algorithm's functions and its struct's fields are."""

    name: str
    prefix: str  # SHA256 or SHA512
    size: int  # bytes of the struct that hold the state
    block: int  # bytes per block
    word: str  # struct format of the bit counters Nl, Nh
    counters_at: int  # offset of Nl (Nh follows)
    num_at: int  # offset of `num` (bytes waiting in the block buffer), then `md_len`
    digest_size: int


# From OpenSSL's <openssl/sha.h>: SHA256_CTX is h[8], Nl, Nh, data[16] (32-bit words), num, md_len;
# SHA512_CTX is h[8], Nl, Nh (64-bit words), a 128-byte block, num, md_len.
_LAYOUTS = {
    "sha256": _Layout("sha256", "SHA256", 112, 64, "=II", 32, 104, 32),
    "sha512": _Layout("sha512", "SHA512", 216, 128, "=QQ", 64, 208, 64),
}
# Room to spare around the struct, in case a build's struct is larger: the self-test then fails safely.
_BUFFER = 512


def _load() -> Any:
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        for layout in _LAYOUTS.values():
            for suffix, args in (
                ("Init", [ctypes.c_void_p]),
                ("Update", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]),
                ("Final", [ctypes.c_char_p, ctypes.c_void_p]),
            ):
                function = getattr(lib, f"{layout.prefix}_{suffix}")
                function.argtypes = args
                function.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return lib


_LIB = _load()


class ResumableHash:
    """A hashlib-like object (update, hexdigest, copy) whose state `save()` exports."""

    def __init__(self, algorithm: str, state: bytes | None = None) -> None:
        if _LIB is None:
            raise RuntimeError("OpenSSL's libcrypto is not available")
        self._layout = _LAYOUTS[algorithm]
        self._ctx = ctypes.create_string_buffer(_BUFFER)
        self._functions = tuple(getattr(_LIB, f"{self._layout.prefix}_{s}") for s in ("Update", "Final"))
        if state is None:
            _LIB[f"{self._layout.prefix}_Init"](self._ctx)
        else:
            ctypes.memmove(self._ctx, state, self._layout.size)

    @property
    def name(self) -> str:
        """The algorithm, as hashlib names it."""
        return self._layout.name

    @property
    def length(self) -> int:
        """How many bytes have been hashed."""
        return _length(self._layout, self._ctx.raw)

    def update(self, data: bytes, /) -> None:
        """Hash more bytes."""
        self._functions[0](self._ctx, bytes(data) if not isinstance(data, bytes) else data, len(data))

    def copy(self) -> ResumableHash:
        """An independent copy of the current state."""
        return ResumableHash(self._layout.name, self._ctx.raw[: self._layout.size])

    def digest(self) -> bytes:
        """The digest of everything hashed so far (the state is left as it was)."""
        out = ctypes.create_string_buffer(self._layout.digest_size)
        final = self.copy()
        final._functions[1](out, final._ctx)
        return out.raw

    def hexdigest(self) -> str:
        """The digest in lowercase hex."""
        return self.digest().hex()

    def save(self) -> bytes:
        """The state, for `restore` in any process on a machine of the same byte order."""
        return MAGIC + self._layout.name.encode() + b":" + self._ctx.raw[: self._layout.size]


def _length(layout: _Layout, raw: bytes) -> int:
    low, high = struct.unpack_from(layout.word, raw, layout.counters_at)
    bits = (int(high) << (struct.calcsize(layout.word) * 4)) | int(low)
    return bits // 8


def restore(saved: bytes | None, algorithm: str, length: int) -> ResumableHash | None:
    """The hash saved by `save`, if it is a valid state of `algorithm` after exactly `length` bytes."""
    layout = _LAYOUTS.get(algorithm)
    if saved is None or layout is None or _LIB is None or not _WORKS:
        return None
    head = MAGIC + algorithm.encode() + b":"
    if not saved.startswith(head) or len(saved) != len(head) + layout.size:
        return None
    raw = saved[len(head) :]
    num, md_len = struct.unpack_from("=II", raw, layout.num_at)
    # `num` indexes the block buffer inside OpenSSL: a wrong one would write out of bounds.
    if md_len != layout.digest_size or num != length % layout.block or _length(layout, raw) != length:
        return None
    return ResumableHash(algorithm, raw)


def _self_test() -> bool:
    if _LIB is None:
        return False
    data = bytes(range(256)) * 41
    for algorithm in _LAYOUTS:
        first = ResumableHash(algorithm)
        first.update(data[:1000])
        saved = first.save()
        # Fields where we expect them, and a restored state carries on exactly as hashlib does.
        if _length(_LAYOUTS[algorithm], first._ctx.raw) != 1000:
            return False
        resumed = ResumableHash(algorithm, saved[-_LAYOUTS[algorithm].size :])
        resumed.update(data[1000:])
        if resumed.hexdigest() != hashlib.new(algorithm, data).hexdigest():
            return False
    return True


_WORKS = _self_test()


def available() -> bool:
    """Whether resumable hashing works here (else callers use hashlib and re-hash from storage)."""
    return _WORKS
