"""The scanning routes: scan reports, findings with filters, per-tag summaries, SBOM export, hiding findings.

Registered before the repository routes, whose `{name:path}` would otherwise take these longer paths.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from dockyard.api import scan_models as m
from dockyard.api.browse_routes import Browser
from dockyard.api.deps import Caller, Ctx, User
from dockyard.api.errors import documented
from dockyard.api.paging import PAGED, After, link_next
from dockyard.auth.errors import InvalidInput
from dockyard.content.digests import parse_digest
from dockyard.content.errors import ContentError
from dockyard.scanning.results import SEVERITIES, FindingFilter, Hiding, ScanReport, StoredFinding
from dockyard.scanning.sbom import cyclonedx_json

# Tags per scan-summary page: each costs a report (a few queries).
MAX_SUMMARIES = 50
router = APIRouter(tags=["scanning"], responses=documented())
MANIFEST = "/repositories/{name:path}/manifests/{reference}"
CYCLONEDX = "application/vnd.cyclonedx+json"


def _hiding(hiding: Hiding) -> m.HidingOut:
    return m.HidingOut(reason=hiding.reason, by=hiding.by, at=hiding.at)


def _report(report: ScanReport) -> m.ScanReportOut:
    return m.ScanReportOut(
        repository=report.repository,
        digest=report.digest,
        status=report.status,
        images=[m.ImageScanOut(**image.__dict__) for image in report.images],
        skipped=list(report.skipped),
        counts=report.counts,
    )


def _finding(finding: StoredFinding) -> m.FindingOut:
    hidden = None if finding.hidden is None else _hiding(finding.hidden)
    values = {**finding.__dict__, "aliases": list(finding.aliases), "hidden": hidden}
    return m.FindingOut(**values)


def _digest(value: str, field: str) -> str:
    try:
        return str(parse_digest(value))
    except ContentError as exc:
        raise InvalidInput(f"{value!r} is not a digest (algorithm:hex)", field) from exc


@router.get(MANIFEST + "/scan", response_model=m.ScanReportOut, responses=documented(403, 404))
def scan_report(name: str, reference: str, ctx: Ctx, identity: Caller) -> m.ScanReportOut:
    """The scan report of a manifest (tag or digest): for an index, one entry per platform image."""
    return _report(ctx.scans.report(identity, name, reference))


@router.post(
    MANIFEST + "/scan",
    response_model=m.ScanReportOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=documented(403, 404),
)
def request_scan(name: str, reference: str, ctx: Ctx, identity: User) -> m.ScanReportOut:
    """Scan a manifest again now (read-write access); the report says queued until the job runs."""
    report = ctx.scans.request_scan(identity, name, reference)
    return _report(report)


@router.get(MANIFEST + "/vulnerabilities", response_model=list[m.FindingOut], responses=documented(403, 404))
def vulnerabilities(
    name: str,
    reference: str,
    ctx: Ctx,
    identity: Caller,
    severity: Annotated[list[str], Query(description="Keep these severities (repeatable).")] = [],  # noqa: B006
    package: Annotated[str | None, Query(max_length=512, description="Binary or source package.")] = None,
    layer: Annotated[str | None, Query(description="Only packages introduced by this layer digest.")] = None,
    include_hidden: bool = False,
) -> list[m.FindingOut]:
    """The vulnerabilities found in a manifest's images, most severe first, with fixed versions and the
    layer that introduced each package."""
    wanted = {s.upper() for s in severity}
    unknown = wanted - set(SEVERITIES)
    if unknown:
        choices = ", ".join(SEVERITIES)
        raise InvalidInput(f"unknown severity {sorted(unknown)[0]!r}: use {choices}", "severity")
    filters = FindingFilter(
        severities=frozenset(wanted),
        package=package,
        layer=_digest(layer, "layer") if layer is not None else None,
        include_hidden=include_hidden,
    )
    return [_finding(f) for f in ctx.scans.findings(identity, name, reference, filters)]


@router.get(
    MANIFEST + "/sbom",
    response_class=Response,
    responses={200: {"content": {CYCLONEDX: {}}}, **documented(403, 404)},
)
def sbom(
    name: str,
    reference: str,
    ctx: Ctx,
    identity: Caller,
    platform: Annotated[str | None, Query(max_length=64, description="For an index: which image.")] = None,
) -> Response:
    """The image's software bill of materials, CycloneDX 1.5 JSON, with its vulnerabilities."""
    document = ctx.scans.sbom(identity, name, reference, platform)
    digest = document["metadata"]["component"]["name"].rpartition("@")[2]
    filename = f"{name.replace('/', '_')}_{digest.replace(':', '-')}.cdx.json"
    return Response(
        cyclonedx_json(document),
        media_type=CYCLONEDX,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/repositories/{name:path}/scan-summary",
    response_model=list[m.TagSummaryOut],
    responses={**PAGED, **documented(403, 404)},
)
def scan_summary(
    name: str,
    ctx: Ctx,
    browse: Browser,
    identity: Caller,
    request: Request,
    response: Response,
    after: After = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_SUMMARIES, description="At most this many tags")
    ] = MAX_SUMMARIES,
) -> list[m.TagSummaryOut]:
    """A page of the repository's tags, by name, each with its manifest's scan status and counts by severity.
    Pages are smaller than elsewhere: each tag's report costs a few queries."""
    page = browse.tags(identity, name, after, limit)
    link_next(request, response, page.next)
    reports = [(tag, ctx.scans.report(identity, name, tag.digest)) for tag in page.items]
    return [
        m.TagSummaryOut(tag=tag.name, digest=tag.digest, status=report.status, counts=report.counts)
        for tag, report in reports
    ]


@router.put(
    MANIFEST + "/vulnerabilities/{vuln_id}/hidden", response_model=m.HidingOut, responses=documented(403, 404)
)
def hide(name: str, reference: str, vuln_id: str, body: m.HideIn, ctx: Ctx, identity: User) -> m.HidingOut:
    """Hide a vulnerability for this image and package in this repository (repository administrators)."""
    digest = _digest(reference, "reference")
    hiding = ctx.scans.hide(identity, name, digest, vuln_id, body.package, body.reason)
    return _hiding(hiding)


@router.delete(
    MANIFEST + "/vulnerabilities/{vuln_id}/hidden",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=documented(403, 404),
)
def unhide(
    name: str,
    reference: str,
    vuln_id: str,
    package: Annotated[str, Query(min_length=1, max_length=512)],
    ctx: Ctx,
    identity: User,
) -> None:
    """Show a hidden vulnerability again."""
    digest = _digest(reference, "reference")
    ctx.scans.unhide(identity, name, digest, vuln_id, package)
