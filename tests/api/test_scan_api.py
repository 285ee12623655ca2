"""The scanning API over HTTP: reports, findings and their filters, summaries, SBOM, hiding, the policy."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from auth_support import ADMIN_PASSWORD, PASSWORD, AppFactory, World

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scanning"))

from advisories import GLIBC, REQUESTS
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from registry_images import IMAGE_CONFIG, OS_DEBIAN, TAR_GZIP, Pushed, descriptor, push_blob, push_multiarch
from scan_support import tar_bytes

from dockyard.app import Services
from dockyard.content.manifest_format import OCI_MANIFEST

REPO = "acme/private"
PUBLIC = "acme/public"


def _as(user: str) -> tuple[str, str]:
    return (user, ADMIN_PASSWORD if user == "admin" else PASSWORD)


def _services(world: World) -> Services:
    services: Services = world.client.app.state.services  # type: ignore[attr-defined]
    return services


def _scanned_world(
    make_world: AppFactory, tmp_path: Path, repo: str, **settings: Any
) -> tuple[World, Pushed]:
    """A world whose `repo` holds a scanned two-platform index (the job run in this thread)."""
    world = make_world(scan_workers=0, **settings)
    services = _services(world)
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps([GLIBC, REQUESTS]))
    services.scans.vulndb.import_path(feed, "test")
    pushed = push_multiarch(services, repo)
    assert services.scans.run_pending() >= 1
    return world, pushed


@pytest.fixture
def scanned(make_world: AppFactory, tmp_path: Path) -> tuple[World, Pushed]:
    """A world whose acme/private holds a scanned two-platform index."""
    return _scanned_world(make_world, tmp_path, REPO)


def _push_over_v2(world: World, tag: str, arch: str) -> str:
    """Push a one-layer Debian image to acme/private as `rw` through PUT /v2/.../manifests; its digest."""
    services = _services(world)
    layer = tar_bytes([("file", "/etc/os-release", OS_DEBIAN)])
    config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers"}}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(IMAGE_CONFIG, push_blob(services, REPO, config), len(config)),
        "layers": [descriptor(TAR_GZIP, push_blob(services, REPO, layer), len(layer))],
    }
    token = world.token("rw", f"repository:{REPO}:pull,push")
    response = world.client.put(
        f"/v2/{REPO}/manifests/{tag}",
        content=json.dumps(manifest).encode(),
        headers={"Content-Type": OCI_MANIFEST, "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    return str(response.headers["Docker-Content-Digest"])


def _get(world: World, path: str, user: str | None = "ro", **params: Any) -> Any:
    response = world.client.get(f"/api/v1{path}", params=params, auth=_as(user) if user else None)
    return response


def test_report_per_platform_and_visibility(scanned: tuple[World, Pushed]) -> None:
    world, pushed = scanned
    response = _get(world, f"/repositories/{REPO}/manifests/latest/scan")
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["digest"], report["status"]) == (pushed.index, "done")
    assert [(i["platform"], i["status"], i["counts"]["CRITICAL"]) for i in report["images"]] == [
        ("linux/amd64", "done", 1),
        ("linux/arm64/v8", "done", 1),
    ]
    assert report["images"][0]["os"] == "Debian GNU/Linux 12 (bookworm)"
    # Private: invisible to outsiders and anonymous callers alike.
    assert _get(world, f"/repositories/{REPO}/manifests/latest/scan", "outsider").status_code == 404
    assert _get(world, f"/repositories/{REPO}/manifests/latest/scan", None).status_code == 404
    missing = _get(world, f"/repositories/{REPO}/manifests/nope/scan")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    # The repository routes still answer beside the longer scanning paths.
    repo = _get(world, f"/repositories/{REPO}")
    assert repo.status_code == 200 and repo.json()["scan_on_push"] is True


def test_vulnerabilities_with_fixed_versions_layers_and_filters(scanned: tuple[World, Pushed]) -> None:
    world, pushed = scanned
    path = f"/repositories/{REPO}/manifests/{pushed.index}/vulnerabilities"
    findings = _get(world, path).json()
    assert [(f["vuln_id"], f["package"], f["platform"]) for f in findings] == [
        ("DSA-0001-1", "libc6", "linux/amd64"),
        ("DSA-0001-1", "libc6", "linux/arm64/v8"),
        ("PYSEC-2099-1", "requests", "linux/arm64/v8"),
    ]
    first = findings[0]
    assert first["aliases"] == ["CVE-2099-0001"]
    assert (first["installed_version"], first["fixed_version"]) == ("2.36-9+deb12u4", "2.36-9+deb12u7")
    assert (first["severity"], first["score"], first["source_package"]) == ("CRITICAL", 9.8, "glibc")
    assert first["layer_digest"] == pushed.amd64_layers[0]
    assert first["path"] == "/var/lib/dpkg/status"
    assert first["hidden"] is None
    assert [f["package"] for f in _get(world, path, severity=["unknown"]).json()] == ["requests"]
    assert len(_get(world, path, severity=["CRITICAL", "HIGH"]).json()) == 2
    assert len(_get(world, path, package="glibc").json()) == 2
    layer = _get(world, path, layer=pushed.arm64_layers[1]).json()
    assert [f["vuln_id"] for f in layer] == ["PYSEC-2099-1"]
    bad = _get(world, path, severity=["severe"])
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "severity"
    bad = _get(world, path, layer="not-a-digest")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "layer"
    bad = _get(world, f"/repositories/{REPO}/manifests/sha256:zz/vulnerabilities")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "reference"
    by_tag = _get(world, f"/repositories/{REPO}/manifests/latest/vulnerabilities").json()
    assert by_tag == findings


def test_scan_on_demand_needs_read_write(scanned: tuple[World, Pushed]) -> None:
    world, pushed = scanned
    path = f"/api/v1/repositories/{REPO}/manifests/{pushed.amd64}/scan"
    assert world.client.post(path, auth=_as("ro")).status_code == 403
    response = world.client.post(path, auth=_as("rw"))
    assert response.status_code == 202
    assert response.json()["status"] == "queued"


def test_hiding_is_for_repository_admins_and_audited(scanned: tuple[World, Pushed]) -> None:
    world, pushed = scanned
    hidden = f"/api/v1/repositories/{REPO}/manifests/{pushed.amd64}/vulnerabilities/DSA-0001-1/hidden"
    body = {"package": "libc6", "reason": "the vulnerable function is never called"}
    assert world.client.put(hidden, json=body, auth=_as("rw")).status_code == 403
    response = world.client.put(hidden, json=body, auth=_as("adm"))
    assert response.status_code == 200, response.text
    assert (response.json()["by"], response.json()["reason"]) == ("adm", body["reason"])
    assert world.client.put(hidden, json={"package": "libc6"}, auth=_as("adm")).status_code == 422

    path = f"/repositories/{REPO}/manifests/{pushed.index}/vulnerabilities"
    assert [f["platform"] for f in _get(world, path, package="libc6").json()] == ["linux/arm64/v8"]
    everything = _get(world, path, package="libc6", include_hidden="true").json()
    assert [f["hidden"]["reason"] if f["hidden"] else None for f in everything] == [body["reason"], None]
    summary = _get(world, f"/repositories/{REPO}/scan-summary").json()
    assert summary == [
        {
            "tag": "latest",
            "digest": pushed.index,
            "status": "done",
            "counts": {"CRITICAL": 1, "HIGH": 0, "MEDIUM": 0, "LOW": 0, "UNKNOWN": 1},
        }
    ]

    events = world.client.get("/api/v1/audit", auth=_as("admin"), params={"action": "vulnerability.hide"})
    assert events.status_code == 200
    event = next(e for e in events.json() if e["action"] == "vulnerability.hide")
    assert event["actor"] == "adm" and event["target"] == f"{REPO}@{pushed.amd64}"
    assert event["detail"]["reason"] == body["reason"] and event["detail"]["vulnerability"] == "DSA-0001-1"

    assert world.client.delete(hidden, params={"package": "libc6"}, auth=_as("rw")).status_code == 403
    assert world.client.delete(hidden, params={"package": "libc6"}, auth=_as("adm")).status_code == 204
    assert len(_get(world, path, package="libc6").json()) == 2
    assert world.client.delete(hidden, params={"package": "libc6"}, auth=_as("adm")).status_code == 404
    events = world.client.get("/api/v1/audit", auth=_as("admin"), params={"action": "vulnerability.unhide"})
    event = next(e for e in events.json() if e["action"] == "vulnerability.unhide")
    assert (event["actor"], event["detail"]["package"]) == ("adm", "libc6")

    # System administrators may hide too; a finding the image does not have cannot be hidden.
    assert world.client.put(hidden, json=body, auth=_as("admin")).status_code == 200
    other = hidden.replace("DSA-0001-1", "CVE-1999-0001")
    assert world.client.put(other, json=body, auth=_as("admin")).status_code == 404
    by_tag = hidden.replace(pushed.amd64, "latest")
    response = world.client.put(by_tag, json=body, auth=_as("admin"))
    assert response.status_code == 400 and response.json()["error"]["field"] == "reference"


def test_sbom_export(scanned: tuple[World, Pushed]) -> None:
    world, pushed = scanned
    response = _get(world, f"/repositories/{REPO}/manifests/{pushed.arm64}/sbom")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.cyclonedx+json")
    assert "attachment" in response.headers["content-disposition"]
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(response.text) is None
    document = response.json()
    assert (document["bomFormat"], document["specVersion"]) == ("CycloneDX", "1.5")
    assert {"libc6", "zlib1g", "requests"} <= {c["name"] for c in document["components"]}
    assert sorted(v["id"] for v in document["vulnerabilities"]) == ["DSA-0001-1", "PYSEC-2099-1"]
    index = _get(world, f"/repositories/{REPO}/manifests/latest/sbom")
    assert index.status_code == 400 and index.json()["error"]["field"] == "platform"
    chosen = _get(world, f"/repositories/{REPO}/manifests/latest/sbom", platform="linux/amd64")
    assert chosen.json()["metadata"]["component"]["name"] == f"{REPO}@{pushed.amd64}"


def test_scan_on_push_setting(scanned: tuple[World, Pushed]) -> None:
    world, _ = scanned
    services = _services(world)
    on = _push_over_v2(world, "on", "amd64")
    assert _get(world, f"/repositories/{REPO}/manifests/on/scan").json()["status"] == "queued"

    path = f"/api/v1/repositories/{REPO}"
    assert world.client.patch(path, json={"scan_on_push": False}, auth=_as("rw")).status_code == 403
    response = world.client.patch(path, json={"scan_on_push": False}, auth=_as("adm"))
    assert response.status_code == 200 and response.json()["scan_on_push"] is False
    assert _get(world, f"/repositories/{REPO}").json()["scan_on_push"] is False
    events = world.client.get(
        "/api/v1/audit", auth=_as("admin"), params={"action": "repository.scan_on_push"}
    )
    assert [e["detail"]["scan_on_push"] for e in events.json()] == [False]

    off = _push_over_v2(world, "off", "arm64")
    assert _get(world, f"/repositories/{REPO}/manifests/off/scan").json()["status"] == "not_scanned"
    assert services.scans.run_pending() == 1  # the image pushed while the setting was on, only
    statuses = {
        s["tag"]: (s["digest"], s["status"]) for s in _get(world, f"/repositories/{REPO}/scan-summary").json()
    }
    assert (statuses["on"], statuses["off"]) == ((on, "done"), (off, "not_scanned"))


def test_public_repository_for_anonymous_and_outsiders(make_world: AppFactory, tmp_path: Path) -> None:
    world, pushed = _scanned_world(make_world, tmp_path, PUBLIC, anonymous_pull=True)
    for user in (None, "outsider"):
        assert _get(world, f"/repositories/{PUBLIC}/manifests/latest/scan", user).json()["status"] == "done"
        findings = _get(world, f"/repositories/{PUBLIC}/manifests/latest/vulnerabilities", user).json()
        assert len(findings) == 3
        assert _get(world, f"/repositories/{PUBLIC}/scan-summary", user).status_code == 200
        sbom = _get(world, f"/repositories/{PUBLIC}/manifests/{pushed.amd64}/sbom", user)
        assert sbom.status_code == 200
    path = f"/api/v1/repositories/{PUBLIC}/manifests/latest/scan"
    assert world.client.post(path).status_code == 401
    assert world.client.post(path, auth=_as("outsider")).status_code == 403
    hidden = f"/api/v1/repositories/{PUBLIC}/manifests/{pushed.amd64}/vulnerabilities/DSA-0001-1/hidden"
    body = {"package": "libc6", "reason": "not reachable"}
    assert world.client.put(hidden, json=body).status_code == 401
    assert world.client.put(hidden, json=body, auth=_as("outsider")).status_code == 403


def test_openapi_lists_the_scanning_routes(world: World) -> None:
    document = world.client.get("/api/v1/openapi.json").json()
    scanning = {
        (path, method)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "scanning" in operation.get("tags", [])
    }
    manifest = "/repositories/{name}/manifests/{reference}"
    assert {
        (manifest + "/scan", "get"),
        (manifest + "/scan", "post"),
        (manifest + "/vulnerabilities", "get"),
        (manifest + "/sbom", "get"),
        ("/repositories/{name}/scan-summary", "get"),
        (manifest + "/vulnerabilities/{vuln_id}/hidden", "put"),
        (manifest + "/vulnerabilities/{vuln_id}/hidden", "delete"),
    } <= scanning
