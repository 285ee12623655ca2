"""Keeping the vulnerability database current: imports from a file or URL, and a scheduled sync.

The sync runs once per interval across all replicas: every replica schedules a job keyed by the interval's
number, and the job queue runs a key at most once. A failed download keeps the data already imported; the
failure is the job's error, shown in the status.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.auth.errors import Forbidden, TooLarge
from dockyard.auth.identity import Identity
from dockyard.auth.policy import may_administer
from dockyard.config import Settings
from dockyard.events.audit import CLI, FAILURE, Actor, AuditLog
from dockyard.jobs.queue import Job, JobQueue
from dockyard.scanning.errors import ScanError
from dockyard.scanning.vulndb import ImportReport, VulnDatabase, VulnDbStatus
from dockyard.scanning.vulndb_fetch import default_source, fetched, is_url

__all__ = ["SYNC_JOB", "SyncStatus", "VulnDbSync"]

log = logging.getLogger(__name__)

SYNC_JOB = "vulndb.sync"
# The actor of the scheduled sync's imports in the audit log.
SYNC_ACTOR = "vulndb-sync"


@dataclass(frozen=True)
class SyncStatus:
    """The sync's configuration and how its latest run ended (state, error, when)."""

    urls: tuple[str, ...]
    interval_seconds: int
    last_state: str | None
    last_error: str | None
    last_run_at: float | None


class VulnDbSync:
    """Imports into the vulnerability database, by hand or on a schedule."""

    def __init__(
        self, vulndb: VulnDatabase, jobs: JobQueue, settings: Settings, audit: AuditLog | None = None
    ) -> None:
        self.vulndb = vulndb
        self.jobs = jobs
        self.settings = settings
        # Every import, whoever starts it (API, UI, command line, the sync), is audited as `vulndb.import`.
        self.audit = audit

    @property
    def download_dir(self) -> Path:
        """Where downloads and uploads wait to be imported (on the data disk, not in memory)."""
        return self.settings.data_dir / "tmp"

    def import_location(
        self,
        location: str,
        source: str | None = None,
        *,
        on_download: Callable[[int | None], None] | None = None,
        downloaded: Callable[[int], None] | None = None,
        imported: Callable[[int], None] | None = None,
        actor: Actor = None,
    ) -> tuple[str, ImportReport]:
        """Import a zip, directory or JSON file, or one at a URL (downloaded first); returns the source
        name used and the report. The callbacks report download and import progress. `actor=None` is the
        command line."""
        name = source or default_source(location)

        def run() -> ImportReport:
            if not is_url(location):
                return self.vulndb.import_path(Path(location), name, progress=imported)
            with fetched(
                location,
                self.download_dir,
                max_bytes=self.settings.vulndb_max_download_bytes,
                on_start=on_download,
                progress=downloaded,
            ) as path:
                return self.vulndb.import_path(path, name, progress=imported)

        return name, self._audited(actor or CLI, name, location, run)

    def import_upload(
        self, actor: Identity, stream: BinaryIO, filename: str, source: str | None = None
    ) -> tuple[str, ImportReport]:
        """Import an uploaded zip or JSON file (system administrators); copied to the data disk first, in
        chunks, refused past `vulndb_max_upload_bytes`."""
        if not may_administer(actor):
            raise Forbidden("only system administrators may import advisories")
        limit = self.settings.vulndb_max_upload_bytes
        self.download_dir.mkdir(parents=True, exist_ok=True)
        suffix = ".zip" if filename.endswith(".zip") else ".json"
        with tempfile.NamedTemporaryFile(dir=self.download_dir, prefix="vulndb-", suffix=suffix) as copy:
            written = 0
            while chunk := stream.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise TooLarge(f"the file is over the limit of {limit} bytes", "file")
                copy.write(chunk)
            copy.flush()
            name = source or default_source(filename)
            return name, self._audited(
                actor, name, filename, lambda: self.vulndb.import_path(Path(copy.name), name)
            )

    def _audited(self, actor: Actor, name: str, origin: str, run: Callable[[], ImportReport]) -> ImportReport:
        """Run an import and record it with its outcome: the report's counts, or why it failed."""
        try:
            report = run()
        except ScanError as exc:
            if self.audit is not None:
                self.audit.record(
                    "vulndb.import", actor=actor, target=name, outcome=FAILURE, origin=origin, reason=str(exc)
                )
            raise
        if self.audit is not None:
            self.audit.record(
                "vulndb.import",
                actor=actor,
                target=name,
                origin=origin,
                records=report.total,
                added=report.added,
                updated=report.updated,
            )
        return report

    def schedule(self, now: float | None = None) -> bool:
        """Queue this interval's sync (at most once across replicas); False if there is none to queue."""
        if not self.settings.vulndb_sync_urls:
            return False
        bucket = int((time.time() if now is None else now) // self.settings.vulndb_sync_interval_seconds)
        return self.jobs.enqueue(SYNC_JOB, str(bucket), rearm=False)

    def handlers(self) -> dict[str, Callable[[Job], None]]:
        """The job kinds this service runs."""
        return {SYNC_JOB: self._sync_job}

    def sync_once(self) -> list[str]:
        """Fetch and import every configured URL; returns the errors (the others are imported anyway)."""
        errors: list[str] = []
        for url in self.settings.vulndb_sync_urls:
            try:
                name, report = self.import_location(url, actor=SYNC_ACTOR)
                log.info("vulnerability database sync: %s from %s, %d records", name, url, report.total)
            except Exception as exc:
                log.warning("vulnerability database sync from %s failed: %s", url, exc)
                errors.append(f"{url}: {exc}")
        return errors

    def _sync_job(self, job: Job) -> None:
        errors = self.sync_once()
        if errors:
            raise RuntimeError("; ".join(errors))

    def status(self) -> tuple[VulnDbStatus, SyncStatus]:
        """What the database holds, and how the scheduled sync is doing."""
        latest = self.jobs.latest(SYNC_JOB)
        state, error, when = latest if latest is not None else (None, None, None)
        sync = SyncStatus(
            tuple(self.settings.vulndb_sync_urls),
            self.settings.vulndb_sync_interval_seconds,
            state,
            error,
            when,
        )
        return self.vulndb.status(), sync
