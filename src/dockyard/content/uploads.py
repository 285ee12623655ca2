"""Blob upload sessions: streamed appends with resumable hashing, verification, and the durable commit."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from dockyard.content.digests import Digest, Hasher, new_hasher
from dockyard.content.errors import BlobUploadInvalid, BlobUploadUnknown, DigestInvalid, RangeInvalid
from dockyard.db import content as q
from dockyard.db.engine import Database, DatabaseFull, DatabaseUnavailable
from dockyard.storage.blobstore import BlobStore
from dockyard.storage.driver import PathBusy, StorageError, StorageFull, Writer

log = logging.getLogger(__name__)

_HASHER_CACHE_SIZE = 4096
# Running out of room, for the bytes or for the database: the upload's bytes are released at once.
_NO_SPACE = (StorageFull, DatabaseFull)


@dataclass(frozen=True)
class UploadStatus:
    """Where an upload session stands."""

    id: str
    size: int


class _HasherCache:
    """sha256 state of recent sessions at their current size, so appends need not re-read earlier bytes.

    A session continued in another process (or after a restart) misses here and is re-hashed from storage.
    """

    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple[int, Hasher]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, upload_id: str, size: int) -> Hasher | None:
        with self._lock:
            item = self._items.pop(upload_id, None)
        return item[1] if item and item[0] == size else None

    def put(self, upload_id: str, size: int, hasher: Hasher) -> None:
        with self._lock:
            self._items[upload_id] = (size, hasher)
            while len(self._items) > _HASHER_CACHE_SIZE:
                self._items.popitem(last=False)

    def peek(self, upload_id: str, size: int) -> Hasher | None:
        with self._lock:
            item = self._items.get(upload_id)
        return item[1].copy() if item and item[0] == size else None

    def drop(self, upload_id: str) -> None:
        with self._lock:
            self._items.pop(upload_id, None)


class Appender:
    """Appends one request's bytes to a session; `finish` records the new size, `complete` ends the upload."""

    def __init__(self, service: UploadService, row: q.UploadRow, writer: Writer, hasher: Hasher) -> None:
        self._service = service
        self._row = row
        self.upload_id = row.id
        self.start = row.size
        self._writer = writer
        self._hasher = hasher

    @property
    def size(self) -> int:
        """The session's size including this request's bytes so far."""
        return self._writer.size

    def write(self, data: bytes) -> None:
        """Append and hash. Out of space, the session is released at once (UploadService.release)."""
        try:
            self._writer.write(data)
        except StorageFull:
            self._writer.close()
            self._service.release(self.upload_id)
            raise
        self._hasher.update(data)

    def finish(self) -> int:
        """Record the new size; fails if another request moved the session meanwhile.

        Progress is not made durable: a crash may lose a session, which the client starts again, but
        never a blob, whose completion fsyncs its bytes (`UploadService.commit`). A session resumed
        after a crash with fewer bytes than recorded fails its digest check there.
        """
        # The file stays held until the size is recorded: a request let in before would truncate to the
        # old size and cut these bytes.
        try:
            self._writer.flush()
            size = self._writer.size
            with self._service.db.write(durable=False) as conn:
                if not q.advance_upload(conn, self.upload_id, self.start, size):
                    raise BlobUploadInvalid("the upload was changed by another request; restart it")
        except _NO_SPACE:
            self._writer.close()
            self._service.release(self.upload_id)
            raise
        finally:
            self._writer.close()
        self._service.hashers.put(self.upload_id, size, self._hasher)
        return size

    def complete(self, digest: Digest) -> int:
        """These bytes end the upload: verify the digest and commit the blob (see UploadService.complete).

        One fsync and one transaction: recording the appended size first, as `finish` does, would be
        undone by the commit that follows at once.
        """
        try:
            hasher = self._hasher if digest.algorithm == "sha256" else None
            return self._service.commit(
                self._row, self._writer.size, digest, hasher, self._writer, self.start
            )
        finally:
            self._writer.close()

    def abort(self) -> None:
        """Give up on this request's bytes; the session stays at its recorded size."""
        self._writer.close()
        self._service.hashers.drop(self.upload_id)


class UploadService:
    """Opens, appends to, completes and cancels upload sessions. Any process may continue any session."""

    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store
        self.hashers = _HasherCache()

    def _session(self, name: str, upload_id: str) -> q.UploadRow:
        try:
            uuid.UUID(upload_id)
        except ValueError:
            raise BlobUploadUnknown("upload id is not valid") from None
        with self.db.read() as conn:
            repo_id = q.repository_id(conn, name)
            row = q.get_upload(conn, upload_id, repo_id) if repo_id is not None else None
        if row is None:
            raise BlobUploadUnknown("no such upload session")
        return row

    def start(self, name: str) -> UploadStatus:
        """Open a session in the repository (created if new)."""
        upload_id = str(uuid.uuid4())
        with self.db.write(durable=False) as conn:
            q.create_upload(conn, upload_id, q.ensure_repository(conn, name))
        return UploadStatus(upload_id, 0)

    def status(self, name: str, upload_id: str) -> UploadStatus:
        """The session's current size."""
        return UploadStatus(upload_id, self._session(name, upload_id).size)

    def append(self, name: str, upload_id: str, start: int | None) -> Appender:
        """Begin appending. `start` (from Content-Range) must equal the current size."""
        row = self._session(name, upload_id)
        if start is not None and start != row.size:
            raise RangeInvalid(f"chunk starts at {start} but the upload holds {row.size} bytes", row.size)
        writer = self._writer(upload_id, row.size)
        try:
            hasher = self.hashers.take(upload_id, row.size) or self._rehash(upload_id, row.size, "sha256")
        except BaseException:
            writer.close()
            raise
        return Appender(self, row, writer, hasher)

    def _writer(self, upload_id: str, size: int) -> Writer:
        """The session's data file at its recorded size, held exclusively until closed."""
        try:
            return self.store.upload_writer(upload_id, resume_at=size)
        except PathBusy:
            raise BlobUploadInvalid(
                "another request is writing to this upload; retry once it has finished"
            ) from None

    def _rehash(self, upload_id: str, size: int, algorithm: str) -> Hasher:
        hasher = new_hasher(algorithm)
        remaining = size
        for chunk in self.store.read_upload(upload_id):
            piece = chunk[:remaining]
            hasher.update(piece)
            remaining -= len(piece)
            if remaining == 0:
                break
        if remaining:
            raise BlobUploadInvalid("upload data is shorter than recorded; restart the upload")
        return hasher

    def complete(self, name: str, upload_id: str, digest: Digest) -> int:
        """Verify the digest, move the bytes into place durably, record the blob. Returns its size."""
        row = self._session(name, upload_id)
        hasher = self.hashers.peek(upload_id, row.size) if digest.algorithm == "sha256" else None
        # Exactly the recorded bytes: a refused or broken append may have left more past them (and an
        # empty blob never got a data file). Held until the bytes are moved, so no append slips in.
        writer = self._writer(upload_id, row.size)
        try:
            return self.commit(row, row.size, digest, hasher, writer, row.size)
        finally:
            writer.close()

    def commit(
        self,
        row: q.UploadRow,
        size: int,
        digest: Digest,
        hasher: Hasher | None,
        writer: Writer,
        recorded: int,
    ) -> int:
        """Commit the session's first `size` bytes, held in `writer`, as the blob `digest`.

        `hasher` holds their sha256 state if known; `recorded` is the size the session's row must
        still have (another request that moved it meanwhile wins, and this one fails).
        """
        try:
            # Durable first, and flushed where a re-hash reads it.
            writer.commit()
            computed = (hasher or self._rehash(row.id, size, digest.algorithm)).hexdigest()
            if computed != digest.hex:
                writer.close()
                self._drop(row.id)
                raise DigestInvalid(
                    f"uploaded content has digest {digest.algorithm}:{computed}, not {digest}",
                    detail={"digest": str(digest)},
                )
            with self.db.write() as conn:
                if not q.advance_upload(conn, row.id, recorded, size):
                    raise BlobUploadInvalid("the upload was changed by another request; restart it")
                # Record first and move the bytes inside the transaction: the blob's row lock (SQLite: the
                # write lock) orders this against a collection of the same digest, which deletes the file
                # before it commits. Moving first, this could keep a file that collection then deletes.
                q.record_blob(conn, str(digest), size)
                self.store.commit_upload(row.id, str(digest))
                q.link_blob(conn, row.repository_id, str(digest))
                q.delete_upload(conn, row.id)
        except _NO_SPACE:
            # A blob moved into place by a transaction that could not commit is an orphan file, which the
            # collector removes after the grace period (another push of it may be recording it meanwhile).
            writer.close()
            self.release(row.id)
            raise
        self.hashers.drop(row.id)
        return size

    def cancel(self, name: str, upload_id: str) -> None:
        """Close a session and drop its bytes."""
        self._session(name, upload_id)
        self._drop(upload_id)

    def _drop(self, upload_id: str) -> None:
        # Bytes first: on a full disk, removing them is what lets the database commit the rest.
        self.hashers.drop(upload_id)
        self.store.discard_upload(upload_id)
        with self.db.write() as conn:
            q.delete_upload(conn, upload_id)

    def release(self, upload_id: str) -> None:
        """Give an upload's space back at once after running out of it: its bytes go first, then the
        session. Never raises: the caller is already failing with the reason; a session the database could
        not forget (full too) holds no bytes and is expired by the collector."""
        self.hashers.drop(upload_id)
        try:
            self.store.discard_upload(upload_id)
            with self.db.write() as conn:
                q.delete_upload(conn, upload_id)
        except (StorageError, DatabaseUnavailable) as exc:
            log.warning("could not fully release upload %s after running out of space: %s", upload_id, exc)
