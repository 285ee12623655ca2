"""Restoring a backup into an empty deployment: the archive is checked whole first, then the database is
brought to the archive's schema revision, the blobs go into the blob store and the tables into the
database in one transaction, and the schema is migrated to this version's newest revision."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.app import build_store
from dockyard.backup import archive
from dockyard.backup.archive import ArchiveInvalid, BlobMember, Manifest, TableMember
from dockyard.config import Settings
from dockyard.db import backup as q
from dockyard.db.engine import Database
from dockyard.db.presence import database_initialised
from dockyard.storage.blobstore import BlobStore
from dockyard.storage.permissions import make_dirs, modes_for, restrict_process

# How many blobs missing from the store a report names (it counts them all).
MISSING_LISTED = 20


class RestoreFailed(Exception):
    """The restore was refused or could not finish; the message says why."""


@dataclass
class RestoreReport:
    """What was restored."""

    manifest: Manifest
    rows: dict[str, int] = field(default_factory=dict)
    skipped_tables: list[str] = field(default_factory=list)
    blobs_written: int = 0
    blobs_present: int = 0
    blob_bytes: int = 0
    missing_blobs: list[str] = field(default_factory=list)
    missing_count: int = 0


def restore_backup(path: Path, settings: Settings) -> RestoreReport:
    """Restore the archive at `path` into the empty deployment the settings name."""
    try:
        manifest = archive.verify(path)
    except ArchiveInvalid as exc:
        raise RestoreFailed(str(exc)) from exc
    known = q.known_revisions_up_to(manifest.alembic_revision)
    if known is None:
        raise RestoreFailed(
            f"the archive's schema revision {manifest.alembic_revision[:80]!r} (Dockyard "
            f"{manifest.dockyard_version[:80]}) is not one this Dockyard knows (a newer version made it?): "
            "restore it with that version or a newer one"
        )
    modes = modes_for(settings.data_group_readable)
    restrict_process(modes)
    make_dirs(settings.data_dir, modes.directory)
    url = settings.effective_database_url
    initialised = database_initialised(url)
    db = Database(url, file_mode=modes.file)
    try:
        if initialised:
            _check_target(db, known)
        db.migrate(manifest.alembic_revision)
        store = build_store(settings, modes)
        report = RestoreReport(manifest)
        try:
            report.rows = q.load(db, _tables(path, store, report))
        except (ArchiveInvalid, q.RestoreRefused) as exc:
            raise RestoreFailed(str(exc)) from exc
        report.skipped_tables = sorted(q.RUNTIME_TABLES & set(report.rows))
        db.migrate()
        _find_missing(db, store, report)
    finally:
        db.close()
    return report


def _check_target(db: Database, known: set[str]) -> None:
    with db.read() as conn:
        in_use = {name: count for name, count in q.occupied(conn).items() if count}
        current = q.current_revision(conn)
    if in_use:
        raise RestoreFailed(q.refusal_for(in_use))
    if current is not None and current not in known:
        raise RestoreFailed(
            f"the target database is at schema revision {current}, newer than the archive's "
            "(made by an older Dockyard): restore into a new data directory or a new, empty PostgreSQL "
            "database"
        )


def _tables(path: Path, store: BlobStore, report: RestoreReport) -> Iterator[q.TableRows]:
    """The archive's tables for the loader, restoring the blobs that come before them on the way."""
    for member in archive.read(path):
        if isinstance(member, BlobMember):
            _restore_blob(store, member, report)
        elif isinstance(member, TableMember):
            entry = member.entry
            yield q.TableRows(q.TableDump(entry.name, entry.columns, entry.binary_columns), member.rows)


def _restore_blob(store: BlobStore, member: BlobMember, report: RestoreReport) -> None:
    """Stream a blob into the store through an upload; it gets its name only once its digest checked."""
    report.blob_bytes += member.size
    if store.size(member.digest) == member.size:
        for _ in member.chunks:
            pass
        report.blobs_present += 1
        return
    upload_id = f"restore-{secrets.token_hex(16)}"
    try:
        writer = store.upload_writer(upload_id, resume_at=0)
        try:
            for chunk in member.chunks:
                writer.write(chunk)
            writer.commit()
        finally:
            writer.close()
        store.commit_upload(upload_id, member.digest)
    except BaseException:
        store.discard_upload(upload_id)
        raise
    report.blobs_written += 1


def _find_missing(db: Database, store: BlobStore, report: RestoreReport) -> None:
    for batch in q.referenced_blobs(db):
        for digest, size in batch:
            if store.size(digest) != size:
                report.missing_count += 1
                if len(report.missing_blobs) < MISSING_LISTED:
                    report.missing_blobs.append(digest)
