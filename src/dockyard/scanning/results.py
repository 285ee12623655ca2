"""What scans produce, as the API and the CLI show it: per image, per finding, per tag."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dockyard.scanning.match import SEVERITIES

__all__ = [
    "SEVERITIES",
    "FindingFilter",
    "Hiding",
    "ImageScan",
    "ScanReport",
    "StoredFinding",
    "TagSummary",
    "zero_counts",
]

# Scan states. An image is queued or running while its job is; done or failed once scanned. A report over
# several images is partial when some failed and others are done, not_scanned when nothing was asked yet.
QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
PARTIAL = "partial"
NOT_SCANNED = "not_scanned"


def zero_counts() -> dict[str, int]:
    """A count per severity label, all zero."""
    return dict.fromkeys(SEVERITIES, 0)


@dataclass(frozen=True)
class Hiding:
    """Why a finding is hidden for one image and component in one repository, by whom and when."""

    reason: str
    by: str
    at: datetime


@dataclass(frozen=True)
class StoredFinding:
    """One advisory affecting one package of one image, as stored after matching."""

    image_digest: str
    platform: str | None
    vuln_id: str
    aliases: tuple[str, ...]
    ecosystem: str
    package: str
    source_package: str
    installed_version: str
    fixed_version: str | None
    severity: str
    score: float | None
    summary: str
    layer_digest: str
    path: str
    hidden: Hiding | None


@dataclass(frozen=True)
class FindingFilter:
    """Which findings to list: severities (empty: all), a package (binary or source name), a layer."""

    severities: frozenset[str] = frozenset()
    package: str | None = None
    layer: str | None = None
    include_hidden: bool = False


@dataclass(frozen=True)
class ImageScan:
    """One scanned image (one platform of an index)."""

    digest: str
    platform: str | None
    status: str
    error: str | None
    scanned_at: datetime | None
    evaluated_at: datetime | None
    os: str | None
    packages: int
    counts: dict[str, int] = field(default_factory=zero_counts)


@dataclass(frozen=True)
class ScanReport:
    """What a manifest (image or index) has: each image's scan, what was left out, and the totals."""

    repository: str
    digest: str
    status: str
    images: tuple[ImageScan, ...]
    skipped: tuple[str, ...]
    counts: dict[str, int]


@dataclass(frozen=True)
class TagSummary:
    """A tag, the manifest it points at, and that manifest's report."""

    tag: str
    digest: str
    report: ScanReport
