"""The storage driver interface.

Kept deliberately small (as CNCF Distribution's is): every driver, filesystem today and S3-compatible later,
implements these methods and passes the same test suite.
Paths are '/'-separated keys relative to the driver's root.
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
    """Another writer has the object open."""


@dataclass(frozen=True)
class FileInfo:
    """What `stat` and `walk` report about one stored object."""

    path: str
    size: int
    modified: float


class Writer(Protocol):
    """An append-only handle on an object being written, resumable at its current size."""

    @property
    def size(self) -> int:
        """Bytes written so far, including those from before this handle was opened."""

    def write(self, data: bytes) -> None:
        """Append data."""

    def flush(self) -> None:
        """Hand everything written to the storage, visible to other readers; a crash may lose it."""

    def commit(self) -> None:
        """Make the bytes written durable; `move` then gives them a durable name."""

    def close(self) -> None:
        """Release the handle without removing what was written."""


class StorageDriver(Protocol):
    """What Dockyard needs from a place that keeps bytes."""

    def stat(self, path: str) -> FileInfo:
        """Size and modification time, or PathNotFound."""

    def read(self, path: str, offset: int = 0, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream the object's bytes from offset, in chunks of at most chunk_size."""

    def local_file(self, path: str) -> Path | None:
        """A local file holding the object, when the driver has one (lets the server send it zero-copy)."""

    def redirect_url(self, path: str, expires_in: int) -> str | None:
        """A short-lived URL a client may fetch the object from directly, when the backend offers one."""

    def writer(self, path: str, resume_at: int | None = None, exclusive: bool = False) -> Writer:
        """Open for appending. resume_at truncates to that size first (drops bytes a crash left past it).

        exclusive: one such writer per object at a time, across processes; PathBusy while another holds it.
        """

    def move(self, source: str, destination: str) -> None:
        """Atomically and durably move an object; an existing destination is replaced.

        The destination's modification time is the time of the move.
        """

    def delete(self, path: str) -> None:
        """Remove an object, or a whole directory tree; a missing path is not an error."""

    def walk(self, prefix: str) -> Iterator[FileInfo]:
        """Every object under prefix, in no particular order."""
