"""Queries for scan results: per image digest its state, inventory and findings; hidden findings per
repository.

Each takes an open transaction. Matching and policy live in dockyard.scanning.service.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from dockyard.db.schema import (
    hidden_findings,
    image_findings,
    image_packages,
    image_scans,
    manifests,
    repositories,
    tags,
)

DONE = "done"
FAILED = "failed"


@dataclass(frozen=True)
class ImageScanRow:
    """The stored state of one image's scan."""

    digest: str
    platform: str | None
    status: str
    error: str | None
    os_id: str | None
    os_version: str | None
    os_name: str | None
    os_codename: str | None
    os_like: str | None
    scanned_at: float | None
    evaluated_at: float | None
    evaluated_generation: float | None


@dataclass(frozen=True)
class PackageRow:
    """One package of an image's inventory; `seq` numbers it within the image."""

    seq: int
    ecosystem: str
    name: str
    version: str
    source_name: str
    source_version: str
    path: str
    layer_digest: str
    purl: str | None


@dataclass(frozen=True)
class FindingRow:
    """One advisory affecting one package of an image (`package_seq` in its inventory)."""

    package_seq: int
    vuln_id: str
    aliases: tuple[str, ...]
    severity: str
    score: float | None
    installed_version: str
    fixed_version: str | None
    summary: str


@dataclass(frozen=True)
class HiddenRow:
    """A finding hidden in one repository."""

    image_digest: str
    vuln_id: str
    package: str
    reason: str
    hidden_by: str
    hidden_at: float


@dataclass(frozen=True)
class OsRow:
    """The OS columns of an image scan."""

    id: str
    version: str
    name: str
    codename: str
    like: str


def scan_on_push(conn: Connection, repository_id: int) -> bool:
    """Whether pushes to the repository are scanned."""
    value = conn.execute(
        select(repositories.c.scan_on_push).where(repositories.c.id == repository_id)
    ).scalar_one_or_none()
    return bool(value)


def image_scans_of(conn: Connection, digests: Collection[str]) -> dict[str, ImageScanRow]:
    """The stored scans among `digests`, by digest."""
    if not digests:
        return {}
    rows = conn.execute(select(image_scans).where(image_scans.c.digest.in_(list(digests))))
    return {row.digest: ImageScanRow(**row._mapping) for row in rows}


def _replace_scan(conn: Connection, values: dict[str, object]) -> None:
    # Deleting cascades to the image's packages and findings: the new result replaces the old as a whole.
    conn.execute(delete(image_scans).where(image_scans.c.digest == values["digest"]))
    conn.execute(insert(image_scans).values(**values))


def store_result(
    conn: Connection,
    digest: str,
    platform: str | None,
    os: OsRow | None,
    packages: Sequence[PackageRow],
    findings: Sequence[FindingRow],
    scanned_at: float,
    generation: float | None,
) -> None:
    """Record a successful scan: state, inventory and findings, replacing any earlier result."""
    _replace_scan(
        conn,
        {
            "digest": digest,
            "platform": platform,
            "status": DONE,
            "error": None,
            "os_id": os.id if os else None,
            "os_version": os.version if os else None,
            "os_name": os.name if os else None,
            "os_codename": os.codename if os else None,
            "os_like": os.like if os else None,
            "scanned_at": scanned_at,
            "evaluated_at": scanned_at,
            "evaluated_generation": generation,
        },
    )
    if packages:
        conn.execute(
            insert(image_packages),
            [{"image_digest": digest, **package.__dict__} for package in packages],
        )
    _insert_findings(conn, digest, findings)


def store_failure(conn: Connection, digest: str, platform: str | None, error: str, when: float) -> None:
    """Record that an image could not be scanned, and why."""
    _replace_scan(
        conn,
        {"digest": digest, "platform": platform, "status": FAILED, "error": error, "scanned_at": when},
    )


def _insert_findings(conn: Connection, digest: str, findings: Sequence[FindingRow]) -> None:
    if not findings:
        return
    conn.execute(
        insert(image_findings),
        [
            {
                "image_digest": digest,
                "package_seq": f.package_seq,
                "vuln_id": f.vuln_id,
                "aliases": json.dumps(list(f.aliases)),
                "severity": f.severity,
                "score": f.score,
                "installed_version": f.installed_version,
                "fixed_version": f.fixed_version,
                "summary": f.summary,
            }
            for f in findings
        ],
    )


def replace_findings(
    conn: Connection, digest: str, findings: Sequence[FindingRow], generation: float, when: float
) -> bool:
    """New findings for an image's stored inventory; False if the image's result is gone or not done."""
    updated = conn.execute(
        update(image_scans)
        .where(image_scans.c.digest == digest, image_scans.c.status == DONE)
        .values(evaluated_at=when, evaluated_generation=generation)
    )
    if updated.rowcount != 1:
        return False
    conn.execute(delete(image_findings).where(image_findings.c.image_digest == digest))
    _insert_findings(conn, digest, findings)
    return True


def packages_of(conn: Connection, digest: str) -> list[PackageRow]:
    """An image's stored inventory, in the order it was found."""
    rows = conn.execute(
        select(image_packages).where(image_packages.c.image_digest == digest).order_by(image_packages.c.seq)
    )
    return [PackageRow(**{k: v for k, v in row._mapping.items() if k != "image_digest"}) for row in rows]


def findings_of(conn: Connection, digest: str) -> list[FindingRow]:
    """An image's stored findings."""
    rows = conn.execute(
        select(image_findings).where(image_findings.c.image_digest == digest).order_by(image_findings.c.id)
    )
    return [
        FindingRow(
            package_seq=row.package_seq,
            vuln_id=row.vuln_id,
            aliases=tuple(json.loads(row.aliases)),
            severity=row.severity,
            score=row.score,
            installed_version=row.installed_version,
            fixed_version=row.fixed_version,
            summary=row.summary,
        )
        for row in rows
    ]


def stale_images(conn: Connection, generation: float, limit: int) -> list[str]:
    """Digests of done scans matched before the vulnerability database's import at `generation`."""
    rows = conn.execute(
        select(image_scans.c.digest)
        .where(
            image_scans.c.status == DONE,
            (image_scans.c.evaluated_generation.is_(None))
            | (image_scans.c.evaluated_generation < generation),
        )
        .order_by(image_scans.c.digest)
        .limit(limit)
    )
    return [row.digest for row in rows]


def hidden_in(conn: Connection, repository_id: int, digests: Collection[str]) -> list[HiddenRow]:
    """The findings hidden in a repository for those images."""
    if not digests:
        return []
    rows = conn.execute(
        select(hidden_findings).where(
            hidden_findings.c.repository_id == repository_id,
            hidden_findings.c.image_digest.in_(list(digests)),
        )
    )
    return [HiddenRow(**{k: v for k, v in row._mapping.items() if k != "repository_id"}) for row in rows]


def hide(conn: Connection, repository_id: int, row: HiddenRow) -> None:
    """Hide a finding in a repository (replacing an earlier reason)."""
    unhide(conn, repository_id, row.image_digest, row.vuln_id, row.package)
    conn.execute(insert(hidden_findings).values(repository_id=repository_id, **row.__dict__))


def unhide(conn: Connection, repository_id: int, digest: str, vuln_id: str, package: str) -> bool:
    """Show a hidden finding again; False if it was not hidden."""
    result = conn.execute(
        delete(hidden_findings).where(
            hidden_findings.c.repository_id == repository_id,
            hidden_findings.c.image_digest == digest,
            hidden_findings.c.vuln_id == vuln_id,
            hidden_findings.c.package == package,
        )
    )
    return result.rowcount > 0


def tagged_manifests(conn: Connection, repository_id: int) -> list[tuple[str, str, str]]:
    """(tag, manifest digest, media type) of every tag of a repository, by tag name."""
    rows = conn.execute(
        select(tags.c.name, manifests.c.digest, manifests.c.media_type)
        .join(manifests, manifests.c.id == tags.c.manifest_id)
        .where(tags.c.repository_id == repository_id)
        .order_by(tags.c.name)
    )
    return [(row.name, row.digest, row.media_type) for row in rows]


def delete_orphans(conn: Connection) -> int:
    """Forget the scans of digests no repository holds any more (after deletes and garbage collection)."""
    held = select(manifests.c.digest).where(manifests.c.digest == image_scans.c.digest).exists()
    result = conn.execute(delete(image_scans).where(~held))
    return int(result.rowcount)


def severity_counts(
    conn: Connection, repository_id: int, digests: Collection[str]
) -> dict[str, dict[str, int]]:
    """Findings per severity of each image, leaving out those hidden in the repository."""
    if not digests:
        return {}
    hidden = (
        select(hidden_findings.c.vuln_id)
        .where(
            hidden_findings.c.repository_id == repository_id,
            hidden_findings.c.image_digest == image_findings.c.image_digest,
            hidden_findings.c.vuln_id == image_findings.c.vuln_id,
            hidden_findings.c.package == image_packages.c.name,
        )
        .exists()
    )
    rows = conn.execute(
        select(image_findings.c.image_digest, image_findings.c.severity, func.count())
        .join(
            image_packages,
            (image_packages.c.image_digest == image_findings.c.image_digest)
            & (image_packages.c.seq == image_findings.c.package_seq),
        )
        .where(image_findings.c.image_digest.in_(list(digests)), ~hidden)
        .group_by(image_findings.c.image_digest, image_findings.c.severity)
    )
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(str(row[0]), {})[str(row[1])] = int(row[2])
    return counts


def package_counts(conn: Connection, digests: Collection[str]) -> dict[str, int]:
    """How many packages each image's inventory holds."""
    if not digests:
        return {}
    rows = conn.execute(
        select(image_packages.c.image_digest, func.count())
        .where(image_packages.c.image_digest.in_(list(digests)))
        .group_by(image_packages.c.image_digest)
    )
    return {str(row[0]): int(row[1]) for row in rows}
