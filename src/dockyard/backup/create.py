"""Writing a backup while the registry serves: every table read at one database snapshot, blob bytes (on
request) streamed from the blob store, the archive written owner-only under a temporary name and renamed."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dockyard import __version__
from dockyard.backup.archive import ArchiveWriter, BlobTotals, Manifest, TableEntry, TableSpool
from dockyard.db import backup as q
from dockyard.db.engine import Database
from dockyard.storage.blobstore import BlobStore
from dockyard.storage.driver import PathNotFound

log = logging.getLogger(__name__)


class BackupFailed(Exception):
    """The backup could not be written; nothing was left at the output path."""


@dataclass(frozen=True)
class BackupReport:
    """What went into the archive."""

    path: Path
    manifest: Manifest


def create_backup(
    db: Database, store: BlobStore, output: Path, with_blobs: bool = False, force: bool = False
) -> BackupReport:
    """Write the archive to `output` (refused if it exists, unless `force`)."""
    output = output.absolute()
    if output.is_dir():
        raise BackupFailed(f"{output} is a directory: give the archive's file name")
    if output.exists() and not force:
        raise BackupFailed(f"{output} exists: choose another name, or add --force to replace it")
    if not output.parent.is_dir():
        raise BackupFailed(f"the directory {output.parent} does not exist")
    started = time.time()
    spools: list[tuple[TableSpool, TableEntry]] = []
    try:
        revision = _dump(db, output.parent, spools)
        blob_spool = next(spool for spool, entry in spools if entry.name == "blobs")
        totals = _blob_totals(store, _blob_rows(blob_spool)) if with_blobs else BlobTotals(included=False)
        manifest = Manifest(
            dockyard_version=__version__,
            alembic_revision=revision,
            created_at=datetime.fromtimestamp(started, UTC).isoformat().replace("+00:00", "Z"),
            source_database="sqlite" if db.is_sqlite else "postgresql",
            tables=[entry for _, entry in spools],
            blobs=totals,
        )
        _write(output, force, started, manifest, spools, store if with_blobs else None)
    finally:
        for spool, _ in spools:
            spool.close()
    return BackupReport(output, manifest)


def _dump(db: Database, directory: Path, spools: list[tuple[TableSpool, TableEntry]]) -> str:
    """Every table into a spool, all read in one snapshot; the schema revision."""
    with q.snapshot(db) as conn:
        revision = q.current_revision(conn)
        if revision != q.head_revision():
            raise BackupFailed(
                f"the database is at schema revision {revision}, this Dockyard expects "
                f"{q.head_revision()}: back it up with the Dockyard version the registry runs"
            )
        for table in q.dump_tables():
            layout = q.layout(table)
            spool = TableSpool(directory, layout.name, layout.columns, layout.binary_columns)
            try:
                for batch in q.table_batches(conn, table):
                    spool.write(batch)
                entry = spool.finish()
            except BaseException:
                spool.close()
                raise
            spools.append((spool, entry))
    return revision


def _blob_rows(spool: TableSpool) -> Iterator[tuple[str, int]]:
    digest, size = spool.columns.index("digest"), spool.columns.index("size")
    for row in spool.rows_back():
        yield row[digest], row[size]


def _blob_totals(store: BlobStore, rows: Iterator[tuple[str, int]]) -> BlobTotals:
    """Count what the store holds of the recorded blobs; those it lacks are listed, not fatal."""
    count = total = 0
    missing: list[str] = []
    for digest, size in rows:
        stored = store.size(digest)
        if stored is None:
            missing.append(digest)
            continue
        if stored != size:
            raise BackupFailed(f"the blob {digest} has {stored} bytes in the store, the database says {size}")
        count += 1
        total += size
    if missing:
        log.warning("%d blobs recorded in the database are missing from the blob store", len(missing))
    return BlobTotals(included=True, count=count, bytes=total, missing=missing)


def _write(
    output: Path,
    force: bool,
    started: float,
    manifest: Manifest,
    spools: list[tuple[TableSpool, TableEntry]],
    store: BlobStore | None,
) -> None:
    temporary = output.with_name(f".{output.name}.{secrets.token_hex(6)}.partial")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            writer = ArchiveWriter(file, started)
            writer.add_manifest(manifest)
            if store is not None:
                blob_spool = next(spool for spool, entry in spools if entry.name == "blobs")
                missing = set(manifest.blobs.missing)
                for digest, size in _blob_rows(blob_spool):
                    if digest not in missing:
                        _add_blob(writer, store, digest, size)
            for spool, entry in spools:
                writer.add_table(spool, entry)
            writer.close()
            file.flush()
            os.fsync(file.fileno())
        if force:
            os.replace(temporary, output)
        else:
            try:
                # A link fails if the name was taken meanwhile: never overwrite without --force.
                os.link(temporary, output)
            except FileExistsError as exc:
                raise BackupFailed(f"{output} exists: choose another name, or add --force") from exc
            os.unlink(temporary)
        _sync_directory(output.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _add_blob(writer: ArchiveWriter, store: BlobStore, digest: str, size: int) -> None:
    try:
        matches = writer.add_blob(digest, size, store.read(digest))
    except (PathNotFound, OSError) as exc:
        raise BackupFailed(
            f"the blob {digest} could not be read whole from the store ({exc}); was it removed by garbage "
            "collection meanwhile? Run the backup again"
        ) from exc
    if not matches:
        raise BackupFailed(f"the blob {digest} in the store does not match its digest: the store is damaged")


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
