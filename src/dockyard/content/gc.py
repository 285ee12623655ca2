"""Online garbage collection: expired uploads, unreferenced blobs, and files no record points at.

No read-only window: each blob is re-checked under a row lock in its own transaction, and anything linked or
written within the grace period is left alone, which protects pushes in flight.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from dockyard.db import content as q
from dockyard.db.engine import Database
from dockyard.storage.blobstore import BlobStore, digest_from_path

log = logging.getLogger(__name__)


@dataclass
class GcReport:
    """What a collection removed (or, on a dry run, would remove)."""

    dry_run: bool
    blobs: list[tuple[str, int]] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    orphan_files: list[tuple[str, int]] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        """Bytes freed (or that would be)."""
        return sum(size for _, size in self.blobs) + sum(size for _, size in self.orphan_files)


class GarbageCollector:
    """Finds and removes what nothing needs any more."""

    def __init__(
        self, db: Database, store: BlobStore, grace_seconds: int, upload_expiry_seconds: int
    ) -> None:
        self.db = db
        self.store = store
        self.grace_seconds = grace_seconds
        self.upload_expiry_seconds = upload_expiry_seconds

    def run(self, dry_run: bool = False) -> GcReport:
        """One full collection."""
        report = GcReport(dry_run=dry_run)
        now = time.time()
        self._expire_uploads(report, now - self.upload_expiry_seconds)
        self._collect_blobs(report, now - self.grace_seconds)
        self._collect_orphan_files(report, now - self.grace_seconds, now - self.upload_expiry_seconds)
        if not dry_run and (report.blobs or report.uploads or report.orphan_files):
            log.info(
                "gc removed %d blobs, %d uploads, %d orphan files, %d bytes",
                len(report.blobs),
                len(report.uploads),
                len(report.orphan_files),
                report.bytes,
            )
        return report

    def _expire_uploads(self, report: GcReport, cutoff: float) -> None:
        with self.db.read() as conn:
            expired = q.upload_ids_idle_since(conn, cutoff)
        for upload_id in expired:
            if not report.dry_run:
                with self.db.write() as conn:
                    q.delete_upload(conn, upload_id)
                self.store.discard_upload(upload_id)
            report.uploads.append(upload_id)

    def _collect_blobs(self, report: GcReport, cutoff: float) -> None:
        with self.db.read() as conn:
            candidates = q.unreferenced_blobs(conn, cutoff)
        for digest, size in candidates:
            if report.dry_run:
                report.blobs.append((digest, size))
                continue
            with self.db.write() as conn:
                removed = q.delete_blob_if_unreferenced(conn, digest, cutoff)
                if removed:
                    # Before the commit: an upload of the same digest waits for it, then finds no file and
                    # moves its own bytes in. A crash in between leaves a record of garbage without bytes,
                    # which reads as absent and goes at the next collection.
                    self.store.delete(digest)
            if removed:
                report.blobs.append((digest, size))

    def _collect_orphan_files(self, report: GcReport, blob_cutoff: float, upload_cutoff: float) -> None:
        collected = {digest for digest, _ in report.blobs}
        files = [f for f in self.store.walk_blobs() if f.modified < blob_cutoff]
        by_digest = {digest_from_path(f.path): f for f in files}
        with self.db.read() as conn:
            known = q.known_blob_digests(conn, [d for d in by_digest if d is not None])
        for digest, info in by_digest.items():
            if digest in known or digest in collected:
                continue
            if not report.dry_run and not self._delete_orphan(digest, info.path):
                continue
            report.orphan_files.append((info.path, info.size))
        self._collect_orphan_uploads(report, upload_cutoff)

    def _delete_orphan(self, digest: str | None, path: str) -> bool:
        """Delete a file no blob record names, unless a push recorded it since the walk (False then)."""
        if digest is None:
            self.store.driver.delete(path)
            return True
        with self.db.write() as conn:
            # A push of this digest records it and moves its bytes under the same lock: it has finished
            # (the digest is known now) or waits until the file is gone, then moves its own bytes in.
            q.lock_digest(conn, digest)
            if q.known_blob_digests(conn, [digest]):
                return False
            self.store.driver.delete(path)
        return True

    def _collect_orphan_uploads(self, report: GcReport, cutoff: float) -> None:
        for info in self.store.walk_uploads():
            upload_id = info.path.split("/")[1]
            if info.modified >= cutoff or upload_id in report.uploads:
                continue
            with self.db.read() as conn:
                if q.upload_exists(conn, upload_id):
                    continue
            if not report.dry_run:
                self.store.discard_upload(upload_id)
            report.orphan_files.append((info.path, info.size))
