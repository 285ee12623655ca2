"""Scanning as a service: queue scans, run them as background jobs, store and serve the results.

A scan job reads a manifest's images layer by layer once, stores each image's inventory, and matches it
against the vulnerability database. When the database changes (an import, in any process), stored
inventories are matched again without reading layers. Results are kept per image digest and shared by
every repository holding it; hiding a finding is per repository. Every method taking an `actor` asks the
access policy; a repository the actor may not browse does not exist for them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from dockyard.auth import policy as p
from dockyard.auth.errors import InvalidInput, NotFound
from dockyard.auth.identity import Identity
from dockyard.content.errors import ContentError, ManifestUnknown, NameUnknown
from dockyard.content.manifest_format import MANIFEST_MEDIA_TYPES
from dockyard.content.manifests import ManifestService
from dockyard.content.names import parse_reference
from dockyard.content.repositories import RepositoryService
from dockyard.db import scans as q
from dockyard.db import vulndb as vq
from dockyard.db.engine import Database
from dockyard.events.audit import AuditLog
from dockyard.jobs.queue import Job, JobQueue
from dockyard.jobs.worker import GiveUp, JobRunner
from dockyard.scanning import results as r
from dockyard.scanning.errors import ScanError
from dockyard.scanning.image import BlobSource, ImageTarget, ScanPlan, plan_scan, scan_image
from dockyard.scanning.inventory import Inventory
from dockyard.scanning.match import SEVERITIES, Finding, match_packages
from dockyard.scanning.packages import OsIdentity, Package
from dockyard.scanning.sbom import Hidden, cyclonedx
from dockyard.scanning.vulndb import VulnDatabase

__all__ = ["REEVALUATE_JOB", "SCAN_JOB", "ScanService"]

log = logging.getLogger(__name__)

SCAN_JOB = "scan"
REEVALUATE_JOB = "scan.reevaluate"
MAX_REASON = 500
# Images re-matched per transaction batch when the vulnerability database changes.
_REEVALUATE_BATCH = 50
# Seconds between sweeps for the scans of deleted manifests and old jobs.
_CLEANUP_INTERVAL = 600.0
_BUSY = (r.QUEUED, r.RUNNING)


def _when(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _os_row(os: OsIdentity | None) -> q.OsRow | None:
    if os is None:
        return None
    return q.OsRow(os.id, os.version_id, os.pretty_name, os.version_codename, " ".join(os.id_like))


def _os_identity(row: q.ImageScanRow) -> OsIdentity | None:
    if row.os_id is None:
        return None
    return OsIdentity(
        row.os_id,
        row.os_version or "",
        row.os_name or "",
        row.os_codename or "",
        tuple((row.os_like or "").split()),
    )


def _package(row: q.PackageRow) -> Package:
    return Package(
        row.ecosystem,
        row.name,
        row.version,
        row.source_name,
        row.source_version,
        row.path,
        row.layer_digest,
        row.purl,
    )


def _package_rows(packages: Sequence[Package]) -> list[q.PackageRow]:
    return [
        q.PackageRow(
            seq,
            p_.ecosystem,
            p_.name,
            p_.version,
            p_.source_name,
            p_.source_version,
            p_.path,
            p_.layer_digest,
            p_.purl,
        )
        for seq, p_ in enumerate(packages)
    ]


def _finding_rows(packages: Sequence[Package], findings: Iterable[Finding]) -> list[q.FindingRow]:
    seq_of = {package: seq for seq, package in enumerate(packages)}
    return [
        q.FindingRow(
            seq_of[f.package],
            f.vuln_id,
            f.aliases,
            f.severity,
            f.score,
            # The package's own version, as dpkg or pip shows it; Debian matches on the source version,
            # which can differ (bsdutils 1:2.38.1-5 is built from util-linux 2.38.1-5).
            f.package.version,
            f.fixed_version,
            f.summary,
        )
        for f in findings
    ]


def _sort_key(finding: r.StoredFinding) -> tuple[Any, ...]:
    return (
        SEVERITIES.index(finding.severity) if finding.severity in SEVERITIES else len(SEVERITIES),
        -(finding.score or 0.0),
        finding.vuln_id,
        finding.package,
        finding.path,
        finding.platform or "",
    )


def _overall(states: Sequence[str]) -> str:
    """One status for a manifest from its images' statuses."""
    if not states:
        return r.NOT_SCANNED
    for busy in (r.RUNNING, r.QUEUED):
        if busy in states:
            return busy
    if all(s == r.DONE for s in states):
        return r.DONE
    if all(s == r.FAILED for s in states):
        return r.FAILED
    if r.DONE in states:
        return r.PARTIAL
    return r.NOT_SCANNED


class ScanService:
    """Queues scans, runs scan and re-evaluation jobs, and answers questions about results."""

    def __init__(
        self,
        db: Database,
        store: BlobSource,
        manifests: ManifestService,
        repositories: RepositoryService,
        jobs: JobQueue,
        audit: AuditLog,
    ) -> None:
        self.db = db
        self.store = store
        self.manifests = manifests
        self.repositories = repositories
        self.jobs = jobs
        # Scan requests and hidings are audited here, in the transaction that makes them.
        self.audit = audit
        self.vulndb = VulnDatabase(db)
        self._last_cleanup = float("-inf")

    # Queueing

    def on_push(
        self, conn: Connection, repository_id: int, repository: str, digest: str, media_type: str
    ) -> None:
        """Push hook, inside the transaction recording the manifest: queue its scan if the repository wants
        it and the digest has no result yet (so the job cannot be lost to a crash after the push)."""
        if media_type not in MANIFEST_MEDIA_TYPES or not q.scan_on_push(conn, repository_id):
            return
        if digest in q.image_scans_of(conn, [digest]):
            return
        self.jobs.enqueue(SCAN_JOB, digest, {"repository": repository}, conn=conn)

    def request_scan(self, actor: Identity, repository: str, reference: str) -> r.ScanReport:
        """Scan a manifest now (again), for callers with read-write access; returns the report."""
        row = self.repositories.require(actor, repository, p.Action.SCAN)
        digest = self._resolve(repository, reference)
        with self.db.write() as conn:
            self.jobs.enqueue(SCAN_JOB, digest, {"repository": repository, "force": True}, conn=conn)
            self.audit.add(conn, "scan.request", actor=actor, target=f"{repository}@{digest}")
        return self._report(row.id, repository, digest)

    # Reading results

    def report(self, actor: Identity, repository: str, reference: str) -> r.ScanReport:
        """The scan report of a manifest by tag or digest."""
        row = self.repositories.require(actor, repository, p.Action.BROWSE)
        return self._report(row.id, repository, self._resolve(repository, reference))

    def tag_summaries(self, actor: Identity, repository: str) -> list[r.TagSummary]:
        """Every tag of a repository with its manifest's report, by tag name."""
        row = self.repositories.require(actor, repository, p.Action.BROWSE)
        with self.db.read() as conn:
            tagged = q.tagged_manifests(conn, row.id)
        return [
            r.TagSummary(tag, digest, self._report(row.id, repository, digest)) for tag, digest, _ in tagged
        ]

    def findings(
        self, actor: Identity, repository: str, reference: str, wanted: r.FindingFilter
    ) -> list[r.StoredFinding]:
        """The findings of a manifest's images, filtered, most severe first."""
        row = self.repositories.require(actor, repository, p.Action.BROWSE)
        plan = self._plan(repository, self._resolve(repository, reference))
        found: list[r.StoredFinding] = []
        for target in plan.targets:
            found.extend(self._image_findings(row.id, target))
        return sorted((f for f in found if _wanted(f, wanted)), key=_sort_key)

    def sbom(
        self, actor: Identity, repository: str, reference: str, platform: str | None = None
    ) -> dict[str, Any]:
        """The CycloneDX 1.5 document of one image: the manifest's, or for an index the `platform` one."""
        row = self.repositories.require(actor, repository, p.Action.PULL)
        digest = self._resolve(repository, reference)
        target = self._one_target(self._plan(repository, digest), platform)
        with self.db.read() as conn:
            scan = q.image_scans_of(conn, [target.manifest_digest]).get(target.manifest_digest)
            if scan is None or scan.status != q.DONE:
                raise NotFound(f"{repository}@{target.manifest_digest} has no scan result yet; scan it first")
            packages, findings = _stored(conn, target.manifest_digest)
            hidden = q.hidden_in(conn, row.id, [target.manifest_digest])
        return cyclonedx(
            Inventory(_os_identity(scan), tuple(packages)),
            repository=repository,
            manifest_digest=target.manifest_digest,
            platform=target.platform,
            findings=findings,
            hidden=[Hidden(h.vuln_id, h.reason) for h in hidden],
        )

    # Hiding

    def hide(
        self, actor: Identity, repository: str, image_digest: str, vuln_id: str, package: str, reason: str
    ) -> r.Hiding:
        """Hide a finding of one image and package in this repository (repository administrators)."""
        reason = reason.strip()
        if not reason or len(reason) > MAX_REASON:
            raise InvalidInput(f"give a reason of 1 to {MAX_REASON} characters", "reason")
        row = self.repositories.require(actor, repository, p.Action.HIDE_VULNERABILITY)
        digest = self._resolve(repository, image_digest)
        with self.db.write() as conn:
            names = {p_.seq: p_.name for p_ in q.packages_of(conn, digest)}
            findings = q.findings_of(conn, digest)
            if not any(f.vuln_id == vuln_id and names.get(f.package_seq) == package for f in findings):
                raise NotFound(f"{vuln_id} does not affect package {package} of {repository}@{digest}")
            now = time.time()
            by = actor.name or "system"
            q.hide(conn, row.id, q.HiddenRow(digest, vuln_id, package, reason, by, now))
            self.audit.add(
                conn,
                "vulnerability.hide",
                actor=actor,
                target=f"{repository}@{digest}",
                vulnerability=vuln_id,
                package=package,
                reason=reason,
            )
        return _hiding(q.HiddenRow(digest, vuln_id, package, reason, by, now))

    def unhide(self, actor: Identity, repository: str, image_digest: str, vuln_id: str, package: str) -> None:
        """Show a hidden finding again."""
        row = self.repositories.require(actor, repository, p.Action.HIDE_VULNERABILITY)
        digest = self._resolve(repository, image_digest)
        with self.db.write() as conn:
            if not q.unhide(conn, row.id, digest, vuln_id, package):
                raise NotFound(f"{vuln_id} on package {package} is not hidden in {repository}@{digest}")
            self.audit.add(
                conn,
                "vulnerability.unhide",
                actor=actor,
                target=f"{repository}@{digest}",
                vulnerability=vuln_id,
                package=package,
            )

    # Jobs

    def handlers(self) -> dict[str, Callable[[Job], None]]:
        """The job kinds this service runs, for the job runner."""
        return {SCAN_JOB: self._scan_job, REEVALUATE_JOB: self._reevaluate_job}

    def schedule_reevaluation(self) -> bool:
        """Queue one re-evaluation per vulnerability database import (once across replicas); True if
        queued."""
        with self.db.read() as conn:
            generation = vq.last_import_at(conn)
            stale = generation is not None and bool(q.stale_images(conn, generation, 1))
        if not stale:
            return False
        return self.jobs.enqueue(REEVALUATE_JOB, repr(generation), {"generation": generation}, rearm=False)

    def maintain(self, job_retention_days: int) -> None:
        """Idle-time upkeep for the job runner: queue re-evaluation after an import, and now and then forget
        the scans of deleted manifests and old finished jobs."""
        self.schedule_reevaluation()
        now = time.monotonic()
        if now - self._last_cleanup < _CLEANUP_INTERVAL:
            return
        self._last_cleanup = now
        with self.db.write() as conn:
            q.delete_orphans(conn)
        self.jobs.prune(timedelta(days=job_retention_days))

    def run_pending(self, limit: int = 10) -> int:
        """Run due scan and re-evaluation jobs in this thread (the CLI and tests); how many ran."""
        return JobRunner(self.jobs, self.handlers()).run_pending(limit)

    def reevaluate_stale(self) -> int:
        """Match every stored inventory evaluated before the newest import again; how many images."""
        with self.db.read() as conn:
            generation = vq.last_import_at(conn)
        if generation is None:
            return 0
        done = 0
        while True:
            with self.db.read() as conn:
                digests = q.stale_images(conn, generation, _REEVALUATE_BATCH)
            if not digests:
                return done
            for digest in digests:
                self._reevaluate(digest, generation)
                done += 1

    def _scan_job(self, job: Job) -> None:
        repository = str(job.payload.get("repository", ""))
        force = bool(job.payload.get("force", False))
        try:
            plan = plan_scan(self.manifests, repository, job.key)
        except (ScanError, ContentError) as exc:
            raise GiveUp(f"cannot scan {repository}@{job.key}: {exc}") from exc
        children = [t.manifest_digest for t in plan.targets if t.manifest_digest != job.key]
        with self.db.read() as conn:
            existing = q.image_scans_of(conn, [t.manifest_digest for t in plan.targets])
        # An index's children were pushed first and have scan jobs of their own: while one is queued or
        # running, it does that image, so two workers never scan the same layers at once.
        busy = {d for d, (state, _) in self.jobs.state(SCAN_JOB, children).items() if state in _BUSY}
        for target in plan.targets:
            if not force and (target.manifest_digest in existing or target.manifest_digest in busy):
                continue
            self._scan_image(target)

    def _scan_image(self, target: ImageTarget) -> None:
        started = time.time()
        try:
            inventory = scan_image(self.store, target)
        except ScanError as exc:
            # A hostile or unreadable layer fails this image only, with the reason for the user.
            with self.db.write() as conn:
                q.store_failure(conn, target.manifest_digest, target.platform, str(exc), started)
            return
        with self.db.read() as conn:
            # Read before matching: an import racing with this scan leaves the result stale, not wrong.
            generation = vq.last_import_at(conn)
        findings = match_packages(inventory.packages, inventory.os, self.vulndb)
        packages = list(inventory.packages)
        with self.db.write() as conn:
            q.store_result(
                conn,
                target.manifest_digest,
                target.platform,
                _os_row(inventory.os),
                _package_rows(packages),
                _finding_rows(packages, findings),
                started,
                generation,
            )

    def _reevaluate_job(self, job: Job) -> None:
        self.reevaluate_stale()

    def _reevaluate(self, digest: str, generation: float) -> None:
        with self.db.read() as conn:
            scan = q.image_scans_of(conn, [digest]).get(digest)
            packages = [_package(row) for row in q.packages_of(conn, digest)]
        if scan is None:
            return
        findings = match_packages(packages, _os_identity(scan), self.vulndb)
        with self.db.write() as conn:
            q.replace_findings(conn, digest, _finding_rows(packages, findings), generation, time.time())

    # Helpers

    def _resolve(self, repository: str, reference: str) -> str:
        """The digest a tag or digest names in the repository; NotFound for an unknown one."""
        try:
            parsed = parse_reference(reference)
        except ContentError as exc:
            raise InvalidInput(f"{reference!r} is neither a tag nor a digest", "reference") from exc
        try:
            return self.manifests.get(repository, parsed).digest
        except (ManifestUnknown, NameUnknown) as exc:
            raise NotFound(f"no manifest {reference} in repository {repository}") from exc

    def _plan(self, repository: str, digest: str) -> ScanPlan:
        try:
            return plan_scan(self.manifests, repository, digest)
        except (ScanError, ContentError) as exc:
            raise InvalidInput(f"{repository}@{digest} cannot be scanned: {exc}", "reference") from exc

    @staticmethod
    def _one_target(plan: ScanPlan, platform: str | None) -> ImageTarget:
        if platform is not None:
            for target in plan.targets:
                if target.platform == platform:
                    return target
            raise NotFound(f"no image for platform {platform}")
        if len(plan.targets) == 1:
            return plan.targets[0]
        if not plan.targets:
            raise InvalidInput("this manifest has no image to describe", "reference")
        choices = ", ".join(t.platform or "?" for t in plan.targets)
        raise InvalidInput(f"this index has several images: choose a platform ({choices})", "platform")

    def _report(self, row_id: int, repository: str, digest: str) -> r.ScanReport:
        try:
            plan = plan_scan(self.manifests, repository, digest)
        except (ScanError, ContentError) as exc:
            failed = r.ImageScan(digest, None, r.FAILED, str(exc), None, None, None, 0)
            return r.ScanReport(repository, digest, r.FAILED, (failed,), (), r.zero_counts())
        digests = [t.manifest_digest for t in plan.targets]
        job = self.jobs.state(SCAN_JOB, [digest]).get(digest)
        with self.db.read() as conn:
            scans = q.image_scans_of(conn, digests)
            counts = q.severity_counts(conn, row_id, digests)
            package_counts = q.package_counts(conn, digests)
        images: list[r.ImageScan] = []
        total = r.zero_counts()
        for target in plan.targets:
            scan = scans.get(target.manifest_digest)
            image_counts = r.zero_counts() | counts.get(target.manifest_digest, {})
            for label, count in image_counts.items():
                total[label] = total.get(label, 0) + count
            packages = package_counts.get(target.manifest_digest, 0)
            images.append(_image_scan(target, scan, job, image_counts, packages))
        skipped = tuple(f"{s.manifest_digest}: {s.reason}" for s in plan.skipped)
        status = _overall([i.status for i in images])
        return r.ScanReport(repository, digest, status, tuple(images), skipped, total)

    def _image_findings(self, repository_id: int, target: ImageTarget) -> list[r.StoredFinding]:
        digest = target.manifest_digest
        with self.db.read() as conn:
            _, findings = _stored(conn, digest)
            hidden = {(h.vuln_id, h.package): h for h in q.hidden_in(conn, repository_id, [digest])}
        out: list[r.StoredFinding] = []
        for finding in findings:
            package = finding.package
            hiding = hidden.get((finding.vuln_id, package.name))
            out.append(
                r.StoredFinding(
                    image_digest=digest,
                    platform=target.platform,
                    vuln_id=finding.vuln_id,
                    aliases=finding.aliases,
                    ecosystem=package.ecosystem,
                    package=package.name,
                    source_package=package.source_name,
                    installed_version=finding.installed_version,
                    fixed_version=finding.fixed_version,
                    severity=finding.severity,
                    score=finding.score,
                    summary=finding.summary,
                    layer_digest=finding.layer_digest,
                    path=finding.path,
                    hidden=None if hiding is None else _hiding(hiding),
                )
            )
        return out


def _hiding(row: q.HiddenRow) -> r.Hiding:
    return r.Hiding(row.reason, row.hidden_by, datetime.fromtimestamp(row.hidden_at, UTC))


def _stored(conn: Connection, digest: str) -> tuple[list[Package], list[Finding]]:
    """An image's stored inventory and its findings, each finding holding its package."""
    packages = [_package(row) for row in q.packages_of(conn, digest)]
    return packages, [_finding(packages[row.package_seq], row) for row in q.findings_of(conn, digest)]


def _finding(package: Package, row: q.FindingRow) -> Finding:
    return Finding(
        vuln_id=row.vuln_id,
        aliases=row.aliases,
        package=package,
        installed_version=row.installed_version,
        fixed_version=row.fixed_version,
        severity=row.severity,
        summary=row.summary,
        layer_digest=package.layer_digest,
        path=package.path,
        score=row.score,
    )


def _wanted(finding: r.StoredFinding, wanted: r.FindingFilter) -> bool:
    if finding.hidden is not None and not wanted.include_hidden:
        return False
    if wanted.severities and finding.severity not in wanted.severities:
        return False
    if wanted.package is not None and wanted.package not in (finding.package, finding.source_package):
        return False
    return wanted.layer is None or finding.layer_digest == wanted.layer


def _image_scan(
    target: ImageTarget,
    scan: q.ImageScanRow | None,
    job: tuple[str, str | None] | None,
    counts: dict[str, int],
    packages: int,
) -> r.ImageScan:
    """One image's state: its job's while a (re)scan is queued or running, else its stored result."""
    job_state, job_error = job if job is not None else (None, None)
    if job_state in _BUSY:
        status, error = job_state, None
    elif scan is not None:
        status, error = scan.status, scan.error
    elif job_state == r.FAILED:
        status, error = r.FAILED, job_error
    else:
        status, error = r.NOT_SCANNED, None
    return r.ImageScan(
        digest=target.manifest_digest,
        platform=target.platform,
        status=status,
        error=error,
        scanned_at=_when(scan.scanned_at) if scan else None,
        evaluated_at=_when(scan.evaluated_at) if scan else None,
        os=(scan.os_name or scan.os_id) if scan else None,
        packages=packages,
        counts=counts,
    )
