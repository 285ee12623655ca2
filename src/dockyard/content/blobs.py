"""Blobs as a repository sees them: existence, reading, cross-repository mounts and deletion."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dockyard.content.errors import BlobUnknown
from dockyard.db import content as q
from dockyard.db.engine import Database
from dockyard.storage.blobstore import BlobStore


@dataclass(frozen=True)
class BlobLocation:
    """How to deliver a blob: a local file, a redirect, or (neither) a stream from the store."""

    digest: str
    size: int
    local_file: Path | None
    redirect_url: str | None


class _NothingToMount(Exception):
    """Rolls a mount back: the blob is recorded but its bytes are gone."""


class BlobService:
    """Reads and links blobs, always through a repository so access is checked per repository."""

    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store

    def size(self, name: str, digest: str) -> int:
        """The size of a blob linked into the repository, or BlobUnknown."""
        size = q.quick_blob_size(self.db, name, digest)
        if size is None:
            raise BlobUnknown(f"blob {digest} is not in repository {name}", detail={"digest": digest})
        return size

    def locate(self, name: str, digest: str) -> BlobLocation:
        """Where to fetch a blob's bytes from."""
        size = self.size(name, digest)
        redirect = self.store.redirect_url(digest)
        local = None if redirect else self.store.local_file(digest)
        if redirect is None and self.store.size(digest) is None:
            # Recorded but absent: never answer with missing bytes.
            raise BlobUnknown(f"blob {digest} is missing from storage", detail={"digest": digest})
        return BlobLocation(digest, size, local, redirect)

    def mount(self, name: str, digest: str, source: str) -> int | None:
        """Link a blob from `source` into `name` without copying. None when the source lacks it."""
        try:
            with self.db.write() as conn:
                source_id = q.repository_id(conn, source)
                size = q.blob_size_in_repository(conn, source_id, digest) if source_id is not None else None
                if size is None:
                    return None
                q.record_blob(conn, digest, size)
                # The row is locked now: a collection of this blob has finished or waits for us. If it took
                # the bytes (or they are lost), link nothing: the client uploads them instead.
                if self.store.size(digest) is None:
                    raise _NothingToMount
                q.link_blob(conn, q.ensure_repository(conn, name), digest)
        except _NothingToMount:
            return None
        return size

    def unlink(self, name: str, digest: str) -> None:
        """Remove a blob from a repository; garbage collection reclaims the bytes later."""
        with self.db.write() as conn:
            repo_id = q.repository_id(conn, name)
            if repo_id is None or not q.unlink_blob(conn, repo_id, digest):
                raise BlobUnknown(f"blob {digest} is not in repository {name}", detail={"digest": digest})
