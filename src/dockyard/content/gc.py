"""Online garbage collection: expired uploads, untagged manifests, unreferenced blobs, and orphan files.

No read-only window: each manifest and blob is re-checked under a row lock in its own transaction, and
anything linked or written within the grace period is left alone, which protects pushes in flight.
Space comes back before the database is asked to write: on a full disk the files go first, so the
transactions that follow have room to commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from dockyard.auth.accounts import require_admin
from dockyard.auth.identity import Identity
from dockyard.db import content as q
from dockyard.db import system_settings as settings_q
from dockyard.db.engine import Database, DatabaseUnavailable
from dockyard.events.audit import AuditLog
from dockyard.storage.blobstore import BlobStore, digest_from_path

log = logging.getLogger(__name__)

# Untagged manifests are read in pages of this many; each pass over them frees the children of the
# indexes the previous pass removed, up to this nesting depth per run (deeper ones go at the next run).
_PAGE = 500
_MAX_PASSES = 8
# The fields of LastCollection after `at` and `by`, in order, as stored.
_COUNTS = ("manifests", "blobs", "uploads", "orphan_files", "bytes", "failures")


@dataclass
class GcReport:
    """What a collection removed (or, on a dry run, would remove), and what waits out the grace period."""

    dry_run: bool
    manifests: list[tuple[str, str]] = field(default_factory=list)
    blobs: list[tuple[str, int]] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    orphan_files: list[tuple[str, int]] = field(default_factory=list)
    # (digest, size, when it may go): unreferenced, but linked within the grace period.
    waiting_blobs: list[tuple[str, int, float]] = field(default_factory=list)
    failures: int = 0

    @property
    def bytes(self) -> int:
        """Bytes freed (or that would be)."""
        return sum(size for _, size in self.blobs) + sum(size for _, size in self.orphan_files)


@dataclass(frozen=True)
class LastCollection:
    """What the last collection (not a dry run) removed, when it ended, and who ran it (None: the periodic
    collection)."""

    at: float
    by: str | None
    manifests: int
    blobs: int
    uploads: int
    orphan_files: int
    bytes: int
    failures: int


class GarbageCollector:
    """Finds and removes what nothing needs any more.

    `untagged_retention_seconds`: untagged manifests that nothing needs go after this long; None keeps
    them (the setting's 0), 0 removes them at once (`dockyard gc --untagged-retention 0`).
    """

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        grace_seconds: int,
        upload_expiry_seconds: int,
        untagged_retention_seconds: int | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.db = db
        self.audit = audit
        self.store = store
        self.grace_seconds = grace_seconds
        self.upload_expiry_seconds = upload_expiry_seconds
        self.untagged_retention_seconds = untagged_retention_seconds

    def run_by(self, actor: Identity | None, dry_run: bool = False) -> GcReport:
        """A collection someone asked for (administrators; `actor` None is the local command line), audited
        as `gc.run` unless it is a dry run. The periodic collection calls `run` and is not audited."""
        require_admin(actor)
        report = self.run(dry_run, by="cli" if actor is None else actor.name)
        if not dry_run and self.audit is not None:
            self.audit.record(
                "gc.run",
                actor="cli" if actor is None else actor,
                target="blobs",
                manifests=len(report.manifests),
                blobs=len(report.blobs),
                bytes=report.bytes,
            )
        return report

    def last(self, actor: Identity | None) -> LastCollection | None:
        """The result of the last collection on any replica (administrators); None before the first."""
        require_admin(actor)
        with self.db.read() as conn:
            row = settings_q.setting(conn, settings_q.LAST_COLLECTION)
        if row is None or not isinstance(row.value, dict):
            return None
        counts = [row.value.get(k) for k in _COUNTS]
        numbers = [v for v in counts if isinstance(v, int)]
        if len(numbers) != len(_COUNTS):
            return None
        return LastCollection(row.updated_at, row.updated_by, *numbers)

    def run(self, dry_run: bool = False, by: str | None = None) -> GcReport:
        """One full collection; unless a dry run, its result is kept for `last` (`by`: who asked for it,
        None for the periodic collection)."""
        report = GcReport(dry_run=dry_run)
        now = time.time()
        self._expire_uploads(report, now - self.upload_expiry_seconds)
        removed = self._collect_untagged(report, now)
        self._collect_blobs(report, now - self.grace_seconds, removed)
        self._collect_orphan_files(report, now - self.grace_seconds, now - self.upload_expiry_seconds)
        if not dry_run and (report.manifests or report.blobs or report.uploads or report.orphan_files):
            log.info(
                "gc removed %d untagged manifests, %d blobs, %d uploads, %d orphan files, %d bytes",
                len(report.manifests),
                len(report.blobs),
                len(report.uploads),
                len(report.orphan_files),
                report.bytes,
            )
        if report.failures:
            log.warning("gc: %d removals failed and are retried at the next run", report.failures)
        if not dry_run:
            self._attempt(report, partial(self._remember, report, by))
        return report

    def _remember(self, report: GcReport, by: str | None) -> bool:
        found = (report.manifests, report.blobs, report.uploads, report.orphan_files)
        values = [len(items) for items in found] + [report.bytes, report.failures]
        counts = dict(zip(_COUNTS, values, strict=True))
        with self.db.write() as conn:
            settings_q.put_setting(conn, settings_q.LAST_COLLECTION, counts, time.time(), by)
        return True

    def _attempt(self, report: GcReport, action: Callable[[], bool]) -> bool:
        """Run one removal; a database failure (a full disk) is counted and the collection goes on, since
        the files already removed may be what the next transaction needs to commit."""
        try:
            return action()
        except DatabaseUnavailable as exc:
            report.failures += 1
            log.warning("gc: a removal failed: %s", exc)
            return False

    def _expire_uploads(self, report: GcReport, cutoff: float) -> None:
        with self.db.read() as conn:
            expired = q.upload_ids_idle_since(conn, cutoff)
        for upload_id in expired:
            if not report.dry_run:
                # Files first: on a full disk they are what lets the database write again. Checked again
                # just before (a read needs no space): a client may have resumed the session meanwhile.
                with self.db.read() as conn:
                    if not q.upload_idle_since(conn, upload_id, cutoff):
                        continue
                self.store.discard_upload(upload_id)
                self._attempt(report, partial(self._forget_upload, upload_id, cutoff))
            report.uploads.append(upload_id)

    def _forget_upload(self, upload_id: str, cutoff: float) -> bool:
        with self.db.write() as conn:
            return q.delete_upload(conn, upload_id, idle_before=cutoff)

    def _collect_untagged(self, report: GcReport, now: float) -> set[int]:
        """Remove manifests untagged past the retention that no index or referrer's subject keeps; the
        ids removed (on a dry run, that would be)."""
        removed: set[int] = set()
        if self.untagged_retention_seconds is None:
            return removed
        cutoff = now - self.untagged_retention_seconds
        for _ in range(_MAX_PASSES):
            before = len(removed)
            after_id = 0
            while True:
                with self.db.read() as conn:
                    page = q.untagged_manifests(conn, cutoff, after_id, _PAGE)
                    keepers = q.manifest_keepers(conn, [row.id for row in page])
                if not page:
                    break
                after_id = page[-1].id
                for row in page:
                    if row.id in removed or not keepers.get(row.id, set()) <= removed:
                        continue
                    if report.dry_run or self._attempt(
                        report, partial(self._delete_manifest, row.id, cutoff)
                    ):
                        removed.add(row.id)
                        report.manifests.append((row.repository, row.digest))
            if len(removed) == before:
                break
        return removed

    def _delete_manifest(self, manifest_id: int, cutoff: float) -> bool:
        with self.db.write() as conn:
            return q.delete_untagged_manifest(conn, manifest_id, cutoff)

    def _collect_blobs(self, report: GcReport, cutoff: float, removed_manifests: set[int]) -> None:
        with self.db.read() as conn:
            candidates = q.unreferenced_blobs(conn, cutoff)
            waiting = q.unreferenced_blobs_linked_since(conn, cutoff)
            if report.dry_run and removed_manifests:
                # Blobs the manifests a dry run would remove leave behind.
                for digest, size, linked_at in q.blobs_referenced_only_by(conn, removed_manifests):
                    if linked_at < cutoff:
                        candidates.append((digest, size))
                    else:
                        waiting.append((digest, size, linked_at))
        report.waiting_blobs = [(d, size, at + self.grace_seconds) for d, size, at in waiting]
        for digest, size in candidates:
            if report.dry_run or self._attempt(report, partial(self._delete_blob, digest, cutoff)):
                report.blobs.append((digest, size))

    def _delete_blob(self, digest: str, cutoff: float) -> bool:
        with self.db.write() as conn:
            removed = q.delete_blob_if_unreferenced(conn, digest, cutoff)
            if removed:
                # Before the commit: an upload of the same digest waits for it, then finds no file and
                # moves its own bytes in. A crash (or a commit refused by a full disk) in between leaves a
                # record of garbage without bytes, which reads as absent and goes at the next collection.
                self.store.delete(digest)
        return removed

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
