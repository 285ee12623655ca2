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
from registry_images import Pushed, push_multiarch

from dockyard.app import Services

REPO = "acme/private"


def _as(user: str) -> tuple[str, str]:
    return (user, ADMIN_PASSWORD if user == "admin" else PASSWORD)


@pytest.fixture
def scanned(make_world: AppFactory, tmp_path: Path) -> tuple[World, Pushed]:
    """A world whose acme/private holds a scanned two-platform index (the job run in this thread)."""
    world = make_world(scan_workers=0)
    services: Services = world.client.app.state.services  # type: ignore[attr-defined]
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps([GLIBC, REQUESTS]))
    services.scans.vulndb.import_path(feed, "test")
    pushed = push_multiarch(services, REPO)
    assert services.scans.run_pending() >= 1
    return world, pushed


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

    assert world.client.delete(hidden, params={"package": "libc6"}, auth=_as("adm")).status_code == 204
    assert len(_get(world, path, package="libc6").json()) == 2
    assert world.client.delete(hidden, params={"package": "libc6"}, auth=_as("adm")).status_code == 404


def test_sbom_export(scanned: tuple[World, Pushed]) -> None:
    world, pushed = scanned
    response = _get(world, f"/repositories/{REPO}/manifests/{pushed.arm64}/sbom")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.cyclonedx+json")
    assert "attachment" in response.headers["content-disposition"]
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
    path = f"/api/v1/repositories/{REPO}"
    assert world.client.patch(path, json={"scan_on_push": False}, auth=_as("rw")).status_code == 403
    response = world.client.patch(path, json={"scan_on_push": False}, auth=_as("adm"))
    assert response.status_code == 200 and response.json()["scan_on_push"] is False
    assert _get(world, f"/repositories/{REPO}").json()["scan_on_push"] is False
