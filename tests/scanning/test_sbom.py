"""CycloneDX 1.5 export of images pushed through the real services, checked against the specification's
JSON schema (shipped in the `cyclonedx-python-lib` wheel) and field by field."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from test_image import REPO, SITE, Pushed, push_multiarch, registry

from dockyard.app import Services
from dockyard.scanning.image import scan_image, scan_targets
from dockyard.scanning.inventory import Inventory
from dockyard.scanning.match import AdvisoryIndex, Finding, match_packages
from dockyard.scanning.osv import parse_advisory
from dockyard.scanning.sbom import Hidden, cyclonedx, cyclonedx_json

_SCHEMA_BASE = "http://cyclonedx.org/schema/"
# The 1.5 schema refers to these two by names relative to its own `$id`.
_SCHEMA_FILES = ("bom-1.5.SNAPSHOT.schema.json", "spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json")

ADVISORIES = [
    {
        "id": "PYSEC-T-1",
        "aliases": ["CVE-2023-32681"],
        "summary": "Proxy-Authorization header leaked on redirect",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N"}],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "requests"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.3.0"}, {"fixed": "2.31.0"}]}],
            }
        ],
    },
    {
        "id": "DEB-T-GLIBC",
        "summary": "glibc issue",
        "affected": [
            {
                "package": {"ecosystem": "Debian:12", "name": "glibc"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.36-9+deb12u5"}]}
                ],
                "database_specific": {"severity": "high"},
            }
        ],
    },
]


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    """The CycloneDX 1.5 JSON schema validator, with the SPDX and JSF schemas it refers to registered."""
    folder = resources.files("cyclonedx.schema") / "_res"
    schemas = [json.loads((folder / name).read_text(encoding="utf-8")) for name in _SCHEMA_FILES]
    store = Registry().with_resources(
        (_SCHEMA_BASE + name, Resource.from_contents(schema))
        for name, schema in zip(_SCHEMA_FILES, schemas, strict=True)
    )
    return Draft7Validator(schemas[0], registry=store, format_checker=Draft7Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pushed, dict[str, Inventory]]:
    """The multi-platform index of `test_image`, pushed and scanned: inventories by platform."""
    services: Services = registry(tmp_path_factory.mktemp("sbom"))
    pushed = push_multiarch(services)
    targets = scan_targets(services.manifests, REPO, pushed.index)
    return pushed, {str(t.platform): scan_image(services.store, t) for t in targets}


def findings_of(inventory: Inventory) -> list[Finding]:
    return match_packages(
        inventory.packages, inventory.os, AdvisoryIndex(parse_advisory(r) for r in ADVISORIES)
    )


def test_sbom_of_each_platform_is_valid_cyclonedx(
    scanned: tuple[Pushed, dict[str, Inventory]], validator: Draft7Validator
) -> None:
    pushed, inventories = scanned
    assert sorted(inventories) == ["linux/amd64", "linux/arm64/v8"]
    for platform, inventory in inventories.items():
        digest = pushed.amd64 if platform == "linux/amd64" else pushed.arm64
        document = cyclonedx(
            inventory,
            repository=REPO,
            manifest_digest=digest,
            platform=platform,
            findings=findings_of(inventory),
            hidden=[Hidden("DEB-T-GLIBC", "glibc is not used by the entry point")],
        )
        errors = sorted(validator.iter_errors(document), key=str)
        assert errors == [], [e.message for e in errors]
        # What is written is what was validated.
        assert json.loads(cyclonedx_json(document)) == document
    # The validator does catch what the specification refuses.
    broken = json.loads(cyclonedx_json(document))
    broken["components"][0]["type"] = "package"
    broken["vulnerabilities"][0]["ratings"][0]["severity"] = "severe"
    broken["serialNumber"] = "not-a-urn"
    assert {tuple(e.absolute_path) for e in validator.iter_errors(broken)} == {
        ("components", 0, "type"),
        ("vulnerabilities", 0, "ratings", 0, "severity"),
        ("serialNumber",),
    }


def test_document_header_and_image(scanned: tuple[Pushed, dict[str, Inventory]]) -> None:
    pushed, inventories = scanned
    serial = uuid.UUID("6f1f1f6e-1a2b-4c3d-8e9f-0a1b2c3d4e5f")
    document = cyclonedx(
        inventories["linux/amd64"],
        repository=REPO,
        manifest_digest=pushed.amd64,
        platform="linux/amd64",
        serial_number=serial,
        timestamp=datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC),
    )
    assert document["bomFormat"] == "CycloneDX"
    assert document["specVersion"] == "1.5"
    assert document["serialNumber"] == "urn:uuid:6f1f1f6e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
    assert document["metadata"]["timestamp"] == "2026-11-23T01:02:03Z"
    image = document["metadata"]["component"]
    assert image["type"] == "container"
    assert image["name"] == f"{REPO}@{pushed.amd64}"
    assert {p["name"]: p["value"] for p in image["properties"]} == {
        "dockyard:manifest_digest": pushed.amd64,
        "dockyard:platform": "linux/amd64",
    }
    # No findings given: no vulnerabilities section at all.
    assert "vulnerabilities" not in document
    # A fresh document gets a fresh serial number.
    again = cyclonedx(inventories["linux/amd64"], repository=REPO, manifest_digest=pushed.amd64)
    assert again["serialNumber"].startswith("urn:uuid:") and again["serialNumber"] != document["serialNumber"]


def _components(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in document["components"]}


def test_components_carry_purls_and_layer_properties(scanned: tuple[Pushed, dict[str, Inventory]]) -> None:
    pushed, inventories = scanned
    document = cyclonedx(inventories["linux/arm64/v8"], repository=REPO, manifest_digest=pushed.arm64)
    components = _components(document)
    assert sorted(components) == ["debian", "libc6", "requests", "zlib1g"]
    os = components["debian"]
    assert (os["type"], os["version"], os["description"]) == (
        "operating-system",
        "12",
        "Debian GNU/Linux 12 (bookworm)",
    )
    libc = components["libc6"]
    assert libc["type"] == "library"
    assert libc["version"] == "2.36-9+deb12u4"
    assert libc["purl"] == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=arm64&distro=debian-12"
    assert libc["bom-ref"] == libc["purl"]
    assert {p["name"]: p["value"] for p in libc["properties"]} == {
        "dockyard:ecosystem": "deb",
        "dockyard:layer_digest": pushed.arm64_layers[0],
        "dockyard:path": "/var/lib/dpkg/status",
        "dockyard:source_name": "glibc",
    }
    requests = components["requests"]
    assert (requests["type"], requests["version"], requests["purl"]) == (
        "library",
        "2.25.0",
        "pkg:pypi/requests@2.25.0",
    )
    assert {p["name"]: p["value"] for p in requests["properties"]} == {
        "dockyard:ecosystem": "PyPI",
        "dockyard:layer_digest": pushed.arm64_layers[1],
        "dockyard:path": f"{SITE}/requests-2.25.0.dist-info/METADATA",
    }
    [dependency] = document["dependencies"]
    assert dependency["ref"] == f"{REPO}@{pushed.arm64}"
    assert sorted(dependency["dependsOn"]) == sorted(c["bom-ref"] for c in document["components"])


def test_vulnerabilities_affect_components_by_bom_ref(scanned: tuple[Pushed, dict[str, Inventory]]) -> None:
    pushed, inventories = scanned
    arm64 = inventories["linux/arm64/v8"]
    document = cyclonedx(
        arm64,
        repository=REPO,
        manifest_digest=pushed.arm64,
        findings=findings_of(arm64),
        hidden=[Hidden("DEB-T-GLIBC", "glibc is not used by the entry point")],
    )
    refs = {c["name"]: c["bom-ref"] for c in document["components"]}
    vulnerabilities = {v["id"]: v for v in document["vulnerabilities"]}
    assert sorted(vulnerabilities) == ["DEB-T-GLIBC", "PYSEC-T-1"]

    pysec = vulnerabilities["PYSEC-T-1"]
    assert pysec["affects"] == [
        {"ref": refs["requests"], "versions": [{"version": "2.25.0", "status": "affected"}]}
    ]
    [rating] = pysec["ratings"]
    assert rating["severity"] == "medium" and rating["score"] == pytest.approx(6.1)
    assert pysec["references"][0]["id"] == "CVE-2023-32681"
    assert pysec["source"]["url"] == "https://osv.dev/vulnerability/PYSEC-T-1"
    assert pysec["description"] == "Proxy-Authorization header leaked on redirect"
    assert pysec["recommendation"] == "Upgrade to requests 2.31.0"
    assert "analysis" not in pysec

    glibc = vulnerabilities["DEB-T-GLIBC"]
    assert glibc["affects"] == [
        {"ref": refs["libc6"], "versions": [{"version": "2.36-9+deb12u4", "status": "affected"}]}
    ]
    assert glibc["ratings"] == [{"severity": "high"}]
    assert glibc["analysis"] == {"state": "not_affected", "detail": "glibc is not used by the entry point"}

    # amd64 has the fixed requests: only the glibc advisory remains.
    amd64 = inventories["linux/amd64"]
    other = cyclonedx(amd64, repository=REPO, manifest_digest=pushed.amd64, findings=findings_of(amd64))
    assert [v["id"] for v in other["vulnerabilities"]] == ["DEB-T-GLIBC"]


def test_same_package_in_two_places_gets_two_bom_refs(scanned: tuple[Pushed, dict[str, Inventory]]) -> None:
    pushed, inventories = scanned
    inventory = inventories["linux/amd64"]
    [requests] = [p for p in inventory.packages if p.name == "requests"]
    copy = dataclasses.replace(requests, path="/opt/venv/requests.dist-info")
    elsewhere = Inventory(inventory.os, (*inventory.packages, copy))
    document = cyclonedx(elsewhere, repository=REPO, manifest_digest=pushed.amd64)
    refs = sorted(c["bom-ref"] for c in document["components"] if c["name"] == "requests")
    assert refs == [
        "pkg:pypi/requests@2.31.0#/opt/venv/requests.dist-info",
        f"pkg:pypi/requests@2.31.0#{SITE}/requests-2.31.0.dist-info/METADATA",
    ]
