"""A cache node's blob store: content-addressed files on local disk, bounded in size, least recently used out.

Each blob is `blobs/<algorithm>/<2 hex>/<hex>`. A file's modification time is when it was fetched (for the
time to live) and its access time when it was last served (for eviction); both are set explicitly, so the
mount's atime options do not matter, and both survive a restart with the files. A blob is written under
`tmp/` while it is fetched and verified, and renamed into place only once its digest matched.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CachedBlob:
    """A blob the cache holds."""

    path: Path
    size: int


class CacheStore:
    """The blobs on this cache node's disk."""

    def __init__(self, root: Path, max_bytes: int, ttl_seconds: int | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._blobs = root / "blobs"
        self._tmp = root / "tmp"
        for directory in (root, self._blobs, self._tmp):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # A fetch cut by a crash or restart leaves a partial file: never served, removed now.
        for leftover in self._tmp.iterdir():
            leftover.unlink(missing_ok=True)
        self._used = sum(path.stat().st_size for path in self._files())

    @property
    def used_bytes(self) -> int:
        """Bytes held now."""
        return self._used

    def path(self, digest: str) -> Path:
        """Where a blob lives once stored."""
        algorithm, _, hex_part = digest.partition(":")
        return self._blobs / algorithm / hex_part[:2] / hex_part

    def lookup(self, digest: str) -> CachedBlob | None:
        """The stored blob, marked as used now; None when absent or past its time to live."""
        path = self.path(digest)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        now = time.time()
        if self.ttl_seconds is not None and now - stat.st_mtime > self.ttl_seconds:
            self._remove(path, stat.st_size)
            return None
        os.utime(path, (now, stat.st_mtime))
        return CachedBlob(path, stat.st_size)

    def temp_file(self) -> Path:
        """A fresh name under tmp/ for a blob being fetched."""
        return self._tmp / uuid.uuid4().hex

    def admit(self, temp: Path, digest: str) -> CachedBlob:
        """Move a verified, fsynced file into place, then evict least recently used blobs over the limit."""
        path = self.path(digest)
        for directory in (path.parent.parent, path.parent):
            # One level at a time: mkdir(parents=True) gives the levels above the last the umask's mode.
            directory.mkdir(mode=0o700, exist_ok=True)
        size = temp.stat().st_size
        now = time.time()
        os.chmod(temp, 0o600)
        os.utime(temp, (now, now))
        with self._lock:
            replaced = path.stat().st_size if path.exists() else 0
            os.replace(temp, path)
            self._used += size - replaced
        self.evict(keep=path)
        return CachedBlob(path, size)

    def evict(self, keep: Path | None = None) -> int:
        """Remove least recently used blobs until the store fits its limit; returns the bytes freed."""
        with self._lock:
            if self._used <= self.max_bytes:
                return 0
            candidates = sorted((path.stat().st_atime, path) for path in self._files() if path != keep)
        freed = 0
        for _, path in candidates:
            if self._used <= self.max_bytes:
                break
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            self._remove(path, size)
            freed += size
        return freed

    def _remove(self, path: Path, size: int) -> None:
        with self._lock:
            try:
                path.unlink()
            except FileNotFoundError:
                return
            self._used -= size

    def _files(self) -> list[Path]:
        return [path for path in self._blobs.rglob("*") if path.is_file()]
