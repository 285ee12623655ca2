"""The storage driver interface.

Kept deliberately small (as CNCF Distribution's is): every driver (filesystem, S3-compatible) implements
these methods and passes the same test suite (tests/storage/test_driver_suite.py). Paths are
'/'-separated keys relative to the driver's root.

The contract is what an object store can do, not what a local disk can:

- An object being written is not readable until its writer commits. A writer's bytes are appended in
  order; `flush` hands them to the storage and `state` then says how to continue after them. A later
  writer, in any process on any replica, continues the object from `resume_at` (the size when that
  state was taken) and `state`; whatever an earlier writer left past `resume_at` is ignored or dropped.
- Nothing keeps two writers of one object apart across replicas: that is the caller's job (uploads hold
  a lease on their database row, content/uploads.py). `exclusive` is a local safeguard a driver may add
  (the filesystem's flock); S3 cannot and ignores it.
- `move` makes an object appear whole under its new name, or not at all, and dates it now.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class StorageError(Exception):
    """The storage backend failed (disk full, permission denied, unreachable service)."""


class StorageFull(StorageError):
    """No space or quota is left where the bytes go (ENOSPC, EDQUOT); writes work again once some is freed."""


class PathNotFound(StorageError):
    """The path does not exist."""


class PathBusy(StorageError):
    """Another writer has the object open (only where the driver can tell: see `exclusive`)."""


@dataclass(frozen=True)
class FileInfo:
    """What `stat` and `walk` report about one stored object."""

    path: str
    size: int
    modified: float


class Writer(Protocol):
    """An append-only handle on an object being written, continued by later writers until committed."""

    @property
    def size(self) -> int:
        """Bytes written so far, including those from before this handle was opened."""

    @property
    def state(self) -> bytes | None:
        """After `flush`: what a later writer needs (with `size` as its resume_at) to continue after the
        bytes written so far; opaque, kept by the caller (the upload's row). None when the driver needs
        nothing beyond the path."""

    def write(self, data: bytes) -> None:
        """Append data."""

    def flush(self) -> None:
        """Hand everything written to the storage for a later writer to continue; a crash may lose it."""

    def commit(self) -> None:
        """End the object: its `size` bytes become durable and readable at its path. No write follows."""

    def close(self) -> None:
        """Release the handle; what was flushed stays for a later writer, the rest is dropped."""


class StorageDriver(Protocol):
    """What Dockyard needs from a place that keeps bytes."""

    def stat(self, path: str) -> FileInfo:
        """Size and modification time of a committed object, or PathNotFound."""

    def read(
        self, path: str, offset: int = 0, chunk_size: int = 1 << 20, length: int | None = None
    ) -> Iterator[bytes]:
        """Stream a committed object's bytes from offset (at most `length` of them), in chunks of at most
        chunk_size. PathNotFound is raised by the call itself, before iterating."""

    def local_file(self, path: str) -> Path | None:
        """A local file holding the object, when the driver has one (lets the server send it zero-copy)."""

    def redirect_url(self, path: str) -> str | None:
        """A short-lived URL a client may GET the object from directly, when the driver is set to give one."""

    def writer(
        self, path: str, resume_at: int = 0, state: bytes | None = None, exclusive: bool = False
    ) -> Writer:
        """Begin an object (resume_at 0, no state) or continue one: resume_at and state as an earlier
        writer's `size` and `state` were after its last flush. Bytes left past resume_at are dropped.

        exclusive: where the driver can, refuse (PathBusy) a second such writer of the object meanwhile.
        """

    def move(self, source: str, destination: str) -> None:
        """Atomically and durably move an object; an existing destination is replaced.

        The destination's modification time is the time of the move.
        """

    def delete(self, path: str) -> None:
        """Remove an object, or a whole directory tree (with any unfinished writes in it); a missing path
        is not an error."""

    def walk(self, prefix: str) -> Iterator[FileInfo]:
        """Every committed object under prefix, in no particular order."""
