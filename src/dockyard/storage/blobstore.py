"""Content-addressed layout on top of a driver: where blobs and upload data live."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dockyard.storage.driver import FileInfo, PathNotFound, StorageDriver, Writer
from dockyard.storage.filesystem import FilesystemDriver

BLOBS = "blobs"
UPLOADS = "uploads"


def blob_path(digest: str) -> str:
    """blobs/<algorithm>/<first two hex>/<hex>: spreads files over directories."""
    algorithm, _, encoded = digest.partition(":")
    return f"{BLOBS}/{algorithm}/{encoded[:2]}/{encoded}"


def digest_from_path(path: str) -> str | None:
    """The digest a blob path stands for, or None for anything else."""
    parts = path.split("/")
    if len(parts) != 4 or parts[0] != BLOBS:
        return None
    return f"{parts[1]}:{parts[3]}"


def upload_path(upload_id: str) -> str:
    """Where an upload's bytes accumulate until they are verified."""
    return f"{UPLOADS}/{upload_id}/data"


class BlobStore:
    """Deduplicated blob bytes, keyed by digest, and the scratch space of uploads."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver
        # A local disk answers in microseconds; an object store is a network round trip per call.
        self.local = isinstance(driver, FilesystemDriver)

    def size(self, digest: str) -> int | None:
        """Stored size, or None when the bytes are absent."""
        try:
            return self.driver.stat(blob_path(digest)).size
        except PathNotFound:
            return None

    def read(self, digest: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream a blob (`length` bytes of it from offset)."""
        return self.driver.read(blob_path(digest), offset, length=length)

    def local_file(self, digest: str) -> Path | None:
        """A local file with the blob's bytes, for zero-copy sending."""
        return self.driver.local_file(blob_path(digest))

    def redirect_url(self, digest: str) -> str | None:
        """A short-lived direct URL for the blob, when the driver is set to give one."""
        return self.driver.redirect_url(blob_path(digest))

    def upload_writer(self, upload_id: str, resume_at: int, state: bytes | None = None) -> Writer:
        """Continue an upload from its recorded size and storage state, dropping anything past them (left
        by a crash). The caller is its one writer (the upload's lease); `exclusive` adds the driver's own
        guard where it has one."""
        return self.driver.writer(upload_path(upload_id), resume_at=resume_at, state=state, exclusive=True)

    def read_upload(self, upload_id: str) -> Iterator[bytes]:
        """Stream an upload's bytes, once its writer has committed them."""
        try:
            return self.driver.read(upload_path(upload_id))
        except PathNotFound:
            return iter(())

    def commit_upload(self, upload_id: str, digest: str) -> None:
        """Move verified, committed upload bytes into their content address, then drop the upload's rest."""
        self.place_upload(upload_id, digest)
        self.discard_upload(upload_id)

    def place_upload(self, upload_id: str, digest: str) -> None:
        """Move verified, committed upload bytes into their content address (whole or not at all), unless
        the blob is there already (same digest, same bytes: the copy we have is kept). The upload's scratch
        space is left for `discard_upload`."""
        if self.size(digest) is None:
            self.driver.move(upload_path(upload_id), blob_path(digest))

    def discard_upload(self, upload_id: str) -> None:
        """Remove an upload's scratch space."""
        self.driver.delete(f"{UPLOADS}/{upload_id}")

    def delete(self, digest: str) -> None:
        """Remove a blob's bytes."""
        self.driver.delete(blob_path(digest))

    def walk_blobs(self) -> Iterator[FileInfo]:
        """Every stored blob file."""
        return self.driver.walk(BLOBS)

    def walk_uploads(self) -> Iterator[FileInfo]:
        """Every upload scratch file."""
        return self.driver.walk(UPLOADS)
