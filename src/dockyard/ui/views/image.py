"""An image's page: an index's platforms, or an image's config, layers, referrers and vulnerabilities."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dockyard.auth.errors import NotFound
from dockyard.content.digests import parse_digest
from dockyard.content.errors import ContentError
from dockyard.scanning.results import SEVERITIES, FindingFilter, StoredFinding
from dockyard.ui.render import SECURITY_HEADERS, page
from dockyard.ui.session import viewer
from dockyard.ui.views.common import Form, back, call, notice, repo_url, services


def _digest(text: str) -> str:
    try:
        return str(parse_digest(text))
    except ContentError as exc:
        raise NotFound("no such image") from exc


def _grouped(findings: list[StoredFinding], key: str) -> dict[str, list[StoredFinding]]:
    groups: dict[str, list[StoredFinding]] = defaultdict(list)
    for finding in findings:
        groups[str(getattr(finding, key))].append(finding)
    return dict(groups)


async def show(request: Request, name: str, rest: str) -> Response:
    """GET /repositories/<name>/-/image/<digest>[/sbom]."""
    text, _, sub = rest.partition("/")
    digest = _digest(text)
    current = await viewer(request)
    svc = services(request)
    if sub == "sbom":
        return await _sbom(request, current.identity, name, digest)
    if sub:
        raise NotFound("no such page")
    view = await call(svc.browser.image, current.identity, name, digest)
    allowed = await call(svc.browser.allowed, current.identity, name)
    context: dict[str, Any] = {}
    if view.kind != "artifact":
        context["report"] = await call(svc.scans.report, current.identity, name, digest)
        findings = await call(
            svc.scans.findings, current.identity, name, digest, FindingFilter(include_hidden=True)
        )
        context["findings"] = findings
        context["by_layer"] = _grouped(findings, "layer_digest")
        context["by_package"] = _grouped(findings, "package")
    return page(
        request,
        current,
        "image.html",
        view=view,
        name=name,
        allowed=allowed,
        severities=SEVERITIES,
        notice=notice(request),
        **context,
    )


async def _sbom(request: Request, identity: Any, name: str, digest: str) -> Response:
    platform = request.query_params.get("platform") or None
    document = await call(services(request).scans.sbom, identity, name, digest, platform)
    filename = f"{name.replace('/', '_')}_{digest.partition(':')[2][:12]}.cdx.json"
    return Response(
        json.dumps(document, indent=2),
        media_type="application/vnd.cyclonedx+json",
        headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def act(request: Request, form: Form, name: str, rest: str) -> Response:
    """POST /repositories/<name>/-/image/<digest>/(scan|hide|unhide)."""
    text, _, action = rest.partition("/")
    digest = _digest(text)
    svc = services(request)
    identity = form.viewer.identity
    here = repo_url(name, "image", digest)
    if action == "scan":
        await call(svc.scans.request_scan, identity, name, digest)
        return back(here, "scan")
    image_digest = _digest(form.get("image"))
    vuln_id, package = form.get("vulnerability"), form.get("package")
    if action == "hide":
        await call(svc.scans.hide, identity, name, image_digest, vuln_id, package, form.get("reason"))
        return back(here, "hidden")
    if action == "unhide":
        await call(svc.scans.unhide, identity, name, image_digest, vuln_id, package)
        return back(here, "shown")
    raise NotFound("no such form")
