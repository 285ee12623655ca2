"""Request and response bodies of the scanning routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.models import Timestamp


class HidingOut(BaseModel):
    """Why a finding is hidden, by whom, when."""

    reason: str
    by: str
    at: Timestamp


class FindingOut(BaseModel):
    """One vulnerability affecting one package of one image."""

    image_digest: str
    platform: str | None
    vuln_id: str
    aliases: list[str]
    ecosystem: str
    package: str
    source_package: str
    installed_version: str
    fixed_version: str | None
    severity: str
    score: float | None
    summary: str
    layer_digest: str = Field(description="The layer that introduced the package.")
    path: str = Field(description="The file in the image the package was read from.")
    hidden: HidingOut | None


class ImageScanOut(BaseModel):
    """The scan of one image (one platform of an index)."""

    digest: str
    platform: str | None
    status: str = Field(description="queued, running, done, failed or not_scanned")
    error: str | None
    scanned_at: Timestamp | None
    evaluated_at: Timestamp | None
    os: str | None
    packages: int
    counts: dict[str, int]


class ScanReportOut(BaseModel):
    """A manifest's scan: each image, what was left out, totals by severity (hidden findings excluded)."""

    repository: str
    digest: str
    status: str = Field(description="queued, running, done, failed, partial or not_scanned")
    images: list[ImageScanOut]
    skipped: list[str]
    counts: dict[str, int]


class TagSummaryOut(BaseModel):
    """A tag with its manifest's scan status and counts by severity."""

    tag: str
    digest: str
    status: str
    counts: dict[str, int]


class HideIn(BaseModel):
    """Hide a finding of one image and package in this repository."""

    model_config = ConfigDict(extra="forbid")

    package: str = Field(min_length=1, max_length=512)
    reason: str = Field(min_length=1, max_length=500)
