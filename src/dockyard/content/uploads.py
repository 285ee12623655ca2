"""Blob upload sessions: streamed appends with resumable hashing, verification, and the durable commit.

Everything about a session is in the database, so any replica continues it: its size, the running
sha256 state after those bytes (content/resumable_hash.py; without it the bytes are hashed once
committed), the storage driver's state (an S3 multipart upload's parts), and which request is writing to
it now (a lease on the row: one writer per upload across the cluster, expiring if the writer's replica
dies). Storage drivers neither lock nor let an upload's bytes be read before they are committed
(storage/driver.py): the lease is what keeps writers apart.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass

from dockyard.content import resumable_hash
from dockyard.content.digests import Digest, Hasher, new_hasher
from dockyard.content.errors import BlobUploadInvalid, BlobUploadUnknown, DigestInvalid, RangeInvalid
from dockyard.db import content as q
from dockyard.db.engine import Database, DatabaseFull, DatabaseUnavailable
from dockyard.storage.blobstore import BlobStore
from dockyard.storage.driver import PathBusy, PathNotFound, StorageError, StorageFull, Writer

log = logging.getLogger(__name__)

# A writer renews its lease while bytes flow; one that stops (its replica died) frees the session after this.
WRITER_LEASE_SECONDS = 60.0
# How long a request waits for another writer to let go before answering that the upload is busy: covers
# the release of a writer whose client just went away, which happens in the background.
_WRITER_WAIT_SECONDS = 2.0
_BUSY = "another request is writing to this upload; retry once it has finished"
# The storage lost what the session recorded (an S3 multipart upload aborted or completed meanwhile).
_GONE = "the upload's stored bytes are gone; restart the upload"
# Running out of room, for the bytes or for the database: the upload's bytes are released at once.
_NO_SPACE = (StorageFull, DatabaseFull)


@dataclass(frozen=True)
class UploadStatus:
    """Where an upload session stands."""

    id: str
    size: int


class Appender:
    """Appends one request's bytes to a session; `finish` records the new size, `complete` ends the upload."""

    def __init__(
        self, service: UploadService, row: q.UploadRow, lease: str, writer: Writer, hasher: Hasher | None
    ) -> None:
        self._service = service
        self._row = row
        self._lease = lease
        self._renewed = time.monotonic()
        self.upload_id = row.id
        self.start = row.size
        self._writer = writer
        self._hasher = hasher

    @property
    def size(self) -> int:
        """The session's size including this request's bytes so far."""
        return self._writer.size

    def write(self, data: bytes) -> None:
        """Append and hash (renewing the writer's lease now and then, before writing). Out of space, the
        session is released at once (UploadService.release)."""
        self._keep_lease()
        try:
            self._writer.write(data)
        except StorageFull:
            self._writer.close()
            self._service.release(self.upload_id)
            raise
        except PathNotFound:
            raise BlobUploadInvalid(_GONE) from None
        if self._hasher is not None:
            self._hasher.update(data)

    def _keep_lease(self) -> None:
        """Renew the writer's lease if a third of it has passed (BlobUploadInvalid if it was lost)."""
        if time.monotonic() - self._renewed > WRITER_LEASE_SECONDS / 3:
            self._service.renew_writer(self.upload_id, self._lease)
            self._renewed = time.monotonic()

    def finish(self) -> int:
        """Record the new size and hash state; fails if another request moved the session meanwhile.

        Progress is not made durable: a crash may lose a session, which the client starts again, but
        never a blob, whose completion fsyncs its bytes (`UploadService.commit`). A session resumed
        after a crash with fewer bytes than recorded fails its digest check there.
        """
        try:
            try:
                self._writer.flush()
                size = self._writer.size
            finally:
                # Closed before the lease goes (with the size, below): the next writer finds the file free.
                self._writer.close()
            state = self._hasher.save() if isinstance(self._hasher, resumable_hash.ResumableHash) else None
            try:
                with self._service.db.write(durable=False) as conn:
                    if not q.advance_upload(
                        conn, self.upload_id, self.start, size, self._lease, state, self._writer.state
                    ):
                        raise BlobUploadInvalid("the upload was changed by another request; restart it")
            except BaseException:
                self._service.release_writer(self.upload_id, self._lease)
                raise
        except _NO_SPACE:
            self._service.release(self.upload_id)
            raise
        return size

    def complete(self, digest: Digest) -> int:
        """These bytes end the upload: verify the digest and commit the blob (see UploadService.complete).

        One fsync and one transaction: recording the appended size first, as `finish` does, would be
        undone by the commit that follows at once.
        """
        try:
            # The lease must still hold when the bytes are committed, not only when they were written.
            self._keep_lease()
            hasher = self._hasher if digest.algorithm == "sha256" else None
            return self._service.commit(
                self._row, self._writer.size, digest, hasher, self._writer, self.start, self._lease
            )
        except BaseException:
            self._writer.close()
            self._service.release_writer(self.upload_id, self._lease)
            raise
        finally:
            self._writer.close()

    def abort(self) -> None:
        """Give up on this request's bytes; the session stays at its recorded size.

        Called from the event loop, even on cancellation, so the lease is let go in the background.
        """
        self._writer.close()
        threading.Thread(
            target=self._service.release_writer, args=(self.upload_id, self._lease), daemon=True
        ).start()


class UploadService:
    """Opens, appends to, completes and cancels upload sessions. Any replica may continue any session."""

    def __init__(self, db: Database, store: BlobStore, replica: str = "local") -> None:
        self.db = db
        self.store = store
        self.replica = replica

    def recover_writers(self) -> int:
        """Free the sessions this replica was writing to when its previous run stopped, so their clients
        resume at once rather than after the lease; call before serving. How many were freed.

        Without a quorum nothing is freed (their leases run out by themselves) and the replica still
        starts, to serve pulls."""
        freed: list[int] = []
        self.db.write_if_possible(
            "upload_writers", lambda conn: freed.append(q.release_writers_of(conn, self.replica)), False
        )
        return sum(freed)

    def _repository_id(self, name: str, upload_id: str) -> int:
        try:
            uuid.UUID(upload_id)
        except ValueError:
            raise BlobUploadUnknown("upload id is not valid") from None
        with self.db.read() as conn:
            repo_id = q.repository_id(conn, name)
        if repo_id is None:
            raise BlobUploadUnknown("no such upload session")
        return repo_id

    def _session(self, name: str, upload_id: str) -> q.UploadRow:
        repo_id = self._repository_id(name, upload_id)
        with self.db.read() as conn:
            row = q.get_upload(conn, upload_id, repo_id)
        if row is None:
            raise BlobUploadUnknown("no such upload session")
        return row

    def _take(self, name: str, upload_id: str, start: int | None) -> tuple[q.UploadRow, str]:
        """Become the session's one writer: (its row, the lease token). `start` must be its size."""
        repo_id = self._repository_id(name, upload_id)
        lease = f"{self.replica}/{uuid.uuid4().hex}"
        deadline = time.monotonic() + _WRITER_WAIT_SECONDS
        while True:
            now = time.time()
            with self.db.write(durable=False) as conn:
                taken = q.take_upload_writer(conn, upload_id, lease, now, now + WRITER_LEASE_SECONDS)
                row = q.get_upload(conn, upload_id, repo_id)
                if row is None:
                    raise BlobUploadUnknown("no such upload session")
                if taken and start is not None and start != row.size:
                    # Raised inside the transaction: the lease is undone with it.
                    raise RangeInvalid(
                        f"chunk starts at {start} but the upload holds {row.size} bytes", row.size
                    )
            if taken:
                return row, lease
            if time.monotonic() >= deadline:
                raise BlobUploadInvalid(_BUSY)
            time.sleep(0.05)

    def renew_writer(self, upload_id: str, lease: str) -> None:
        """Keep the writer's lease; BlobUploadInvalid if another request has taken the session over."""
        with self.db.write(durable=False) as conn:
            if not q.renew_upload_writer(conn, upload_id, lease, time.time() + WRITER_LEASE_SECONDS):
                raise BlobUploadInvalid("the upload was taken over by another request; restart it")

    def release_writer(self, upload_id: str, lease: str) -> None:
        """Let the next request write (a no-op if the lease was already gone)."""
        try:
            with self.db.write(durable=False) as conn:
                q.release_upload_writer(conn, upload_id, lease)
        except DatabaseUnavailable:
            # Never in the way of the error being answered: the lease expires on its own.
            log.warning("could not release the writer lease of upload %s; it will expire", upload_id)

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
        row, lease = self._take(name, upload_id, start)
        try:
            writer = self._writer(row)
        except BaseException:
            self.release_writer(upload_id, lease)
            raise
        return Appender(self, row, lease, writer, self._running_hash(row))

    def _writer(self, row: q.UploadRow) -> Writer:
        """The session's data at its recorded size and storage state."""
        try:
            return self.store.upload_writer(row.id, resume_at=row.size, state=row.storage_state)
        except PathBusy:
            raise BlobUploadInvalid(_BUSY) from None
        except PathNotFound:
            raise BlobUploadInvalid(_GONE) from None

    @staticmethod
    def _running_hash(row: q.UploadRow) -> Hasher | None:
        """The sha256 state after the session's bytes, as stored with it; None when it is not known (the
        bytes are then hashed once committed: storage cannot be read before)."""
        if row.size == 0:
            return (
                resumable_hash.ResumableHash("sha256") if resumable_hash.available() else new_hasher("sha256")
            )
        return resumable_hash.restore(row.hash_state, "sha256", row.size)

    def _rehash(self, upload_id: str, size: int, algorithm: str) -> Hasher:
        hasher = (
            resumable_hash.ResumableHash(algorithm) if resumable_hash.available() else new_hasher(algorithm)
        )
        if size == 0:
            return hasher
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
        row, lease = self._take(name, upload_id, None)
        try:
            hasher = (
                resumable_hash.restore(row.hash_state, "sha256", row.size)
                if digest.algorithm == "sha256"
                else None
            )
            # Exactly the recorded bytes: a refused or broken append may have left more past them (and an
            # empty blob never got a data file).
            writer = self._writer(row)
            try:
                return self.commit(row, row.size, digest, hasher, writer, row.size, lease)
            finally:
                writer.close()
        except BaseException:
            self.release_writer(upload_id, lease)
            raise

    def commit(
        self,
        row: q.UploadRow,
        size: int,
        digest: Digest,
        hasher: Hasher | None,
        writer: Writer,
        recorded: int,
        lease: str,
    ) -> int:
        """Commit the session's first `size` bytes, held in `writer`, as the blob `digest`.

        `hasher` holds their sha256 state if known; `recorded` is the size the session's row must
        still have and `lease` the writer's lease it must still hold (another request that moved it
        meanwhile wins, and this one fails).
        """
        try:
            # Durable first, and readable where a re-hash reads it.
            try:
                writer.commit()
            except PathNotFound:
                raise BlobUploadInvalid(_GONE) from None
            computed = (hasher or self._rehash(row.id, size, digest.algorithm)).hexdigest()
            if computed != digest.hex:
                writer.close()
                self._drop(row.id)
                raise DigestInvalid(
                    f"uploaded content has digest {digest.algorithm}:{computed}, not {digest}",
                    detail={"digest": str(digest)},
                )
            with self.db.write() as conn:
                if not q.advance_upload(conn, row.id, recorded, size, lease):
                    raise BlobUploadInvalid("the upload was changed by another request; restart it")
                # Record first and move the bytes inside the transaction: the blob's row lock (SQLite: the
                # write lock) orders this against a collection of the same digest, which deletes the file
                # before it commits. Moving first, this could keep a file that collection then deletes.
                q.record_blob(conn, str(digest), size)
                self.store.place_upload(row.id, str(digest))
                q.link_blob(conn, row.repository_id, str(digest))
                q.delete_upload(conn, row.id)
            # After the commit, not holding the database's locks: on an object store the scratch space's
            # removal is several requests. If it is cut short, the collector removes what is left.
            self._discard_quietly(row.id)
        except _NO_SPACE:
            # A blob moved into place by a transaction that could not commit is an orphan file, which the
            # collector removes after the grace period (another push of it may be recording it meanwhile).
            writer.close()
            self.release(row.id)
            raise
        return size

    def cancel(self, name: str, upload_id: str) -> None:
        """Close a session and drop its bytes."""
        self._session(name, upload_id)
        self._drop(upload_id)

    def _discard_quietly(self, upload_id: str) -> None:
        try:
            self.store.discard_upload(upload_id)
        except StorageError as exc:
            log.warning("could not remove the scratch space of completed upload %s: %s", upload_id, exc)

    def _drop(self, upload_id: str) -> None:
        # Bytes first: on a full disk, removing them is what lets the database commit the rest.
        self.store.discard_upload(upload_id)
        with self.db.write() as conn:
            q.delete_upload(conn, upload_id)

    def release(self, upload_id: str) -> None:
        """Give an upload's space back at once after running out of it: its bytes go first, then the
        session (and with it any writer's lease). Never raises: the caller is already failing with the
        reason; a session the database could not forget (full too) holds no bytes and is expired by the
        collector."""
        try:
            self.store.discard_upload(upload_id)
            with self.db.write() as conn:
                q.delete_upload(conn, upload_id)
        except (StorageError, DatabaseUnavailable) as exc:
            log.warning("could not fully release upload %s after running out of space: %s", upload_id, exc)
