"""CycloneDX 1.5 JSON export of an image's inventory, with its findings as `vulnerabilities`.

The document describes one image (`metadata.component`, type `container`, named `repository@digest`);
its OS is an `operating-system` component and each package a `library` component carrying its purl and,
as properties, the file it was read from and the layer that installed it. Findings become one
vulnerability per advisory, affecting the components by `bom-ref`; findings the caller hides carry an
`analysis` saying so.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from dockyard import __version__
from dockyard.scanning.inventory import Inventory
from dockyard.scanning.match import Finding
from dockyard.scanning.packages import OsIdentity, Package

__all__ = ["PROPERTY_PREFIX", "SPEC_VERSION", "Hidden", "cyclonedx", "cyclonedx_json"]

SPEC_VERSION = "1.5"
# Property names are namespaced by the tool that writes them (CycloneDX property taxonomy convention).
PROPERTY_PREFIX = "dockyard:"
# Our severity labels onto CycloneDX's rating severities.
_SEVERITIES = {"CRITICAL": "critical", "HIGH": "high", "MEDIUM": "medium", "LOW": "low", "UNKNOWN": "unknown"}
_OSV_URL = "https://osv.dev/vulnerability/"


@dataclass(frozen=True)
class Hidden:
    """A finding the user chose to hide: the advisory id, and why (kept as the analysis detail)."""

    vuln_id: str
    reason: str


def _package_key(package: Package) -> tuple[str, str, str, str]:
    return (package.ecosystem, package.name, package.version, package.path)


def _bom_refs(packages: Iterable[Package]) -> dict[tuple[str, str, str, str], str]:
    """A unique `bom-ref` per package: its purl (or ecosystem/name@version), with the file it was read
    from appended when the same package is installed in several places."""
    bases: dict[tuple[str, str, str, str], str] = {}
    counts: dict[str, int] = {}
    for package in packages:
        base = package.purl or f"{package.ecosystem}/{package.name}@{package.version}"
        bases[_package_key(package)] = base
        counts[base] = counts.get(base, 0) + 1
    return {key: base if counts[base] == 1 else f"{base}#{key[3]}" for key, base in bases.items()}


def _properties(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": PROPERTY_PREFIX + name, "value": value} for name, value in values.items() if value]


def _os_component(os: OsIdentity) -> dict[str, Any]:
    component: dict[str, Any] = {
        "bom-ref": f"os:{os.id}@{os.version_id}",
        "type": "operating-system",
        "name": os.id,
        "version": os.version_id,
    }
    if os.pretty_name:
        component["description"] = os.pretty_name
    return component


def _component(package: Package, bom_ref: str) -> dict[str, Any]:
    component: dict[str, Any] = {
        "bom-ref": bom_ref,
        "type": "library",
        "name": package.name,
        "version": package.version,
    }
    if package.purl:
        component["purl"] = package.purl
    component["properties"] = _properties(
        {
            "ecosystem": package.ecosystem,
            "layer_digest": package.layer_digest,
            "path": package.path,
            # Only where it differs: the source package names the advisories of some distributions.
            "source_name": package.source_name if package.source_name != package.name else "",
            "source_version": package.source_version if package.source_version != package.version else "",
        }
    )
    return component


def _vulnerability(
    vuln_id: str,
    findings: list[Finding],
    refs: Mapping[tuple[str, str, str, str], str],
    hidden: Hidden | None,
) -> dict[str, Any]:
    first = findings[0]
    rating: dict[str, Any] = {"severity": _SEVERITIES.get(first.severity, "unknown")}
    if first.score is not None:
        rating["score"] = first.score
    vulnerability: dict[str, Any] = {
        "bom-ref": f"vuln:{vuln_id}",
        "id": vuln_id,
        "source": {"name": "OSV", "url": _OSV_URL + quote(vuln_id)},
        "ratings": [rating],
    }
    if first.aliases:
        vulnerability["references"] = [
            {"id": alias, "source": {"name": "OSV", "url": _OSV_URL + quote(alias)}}
            for alias in first.aliases
        ]
    if first.summary:
        vulnerability["description"] = first.summary
    fixes = sorted({f"{f.package.name} {f.fixed_version}" for f in findings if f.fixed_version is not None})
    if fixes:
        vulnerability["recommendation"] = "Upgrade to " + ", ".join(fixes)
    if hidden is not None:
        # Hiding is the user's judgement that the image is not affected; the reason says on what grounds.
        vulnerability["analysis"] = {"state": "not_affected", "detail": hidden.reason}
    affects: dict[str, set[str]] = {}
    for finding in findings:
        ref = refs.get(_package_key(finding.package))
        if ref is not None:
            affects.setdefault(ref, set()).add(finding.installed_version)
    vulnerability["affects"] = [
        {"ref": ref, "versions": [{"version": v, "status": "affected"} for v in sorted(versions)]}
        for ref, versions in sorted(affects.items())
    ]
    return vulnerability


def cyclonedx(
    inventory: Inventory,
    *,
    repository: str,
    manifest_digest: str,
    platform: str | None = None,
    findings: Iterable[Finding] = (),
    hidden: Iterable[Hidden] = (),
    serial_number: uuid.UUID | None = None,
    timestamp: datetime | None = None,
) -> dict[str, Any]:
    """The CycloneDX 1.5 document (as JSON-ready data) of image `repository@manifest_digest`.

    Findings whose package is not in `inventory` are left out (they would affect nothing in the BOM); a
    `Hidden` entry marks every finding of its advisory. `serial_number` and `timestamp` default to a new
    random UUID and now, and are parameters so that a caller can reproduce a document.
    """
    refs = _bom_refs(inventory.packages)
    image_ref = f"{repository}@{manifest_digest}"
    image: dict[str, Any] = {"bom-ref": image_ref, "type": "container", "name": image_ref}
    image["properties"] = _properties({"manifest_digest": manifest_digest, "platform": platform or ""})
    when = (timestamp or datetime.now(UTC)).astimezone(UTC)
    components: list[dict[str, Any]] = []
    if inventory.os is not None:
        components.append(_os_component(inventory.os))
    components.extend(_component(p, refs[_package_key(p)]) for p in inventory.packages)
    document: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": (serial_number or uuid.uuid4()).urn,
        "version": 1,
        "metadata": {
            "timestamp": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "tools": {"components": [{"type": "application", "name": "dockyard", "version": __version__}]},
            "component": image,
        },
        "components": components,
        "dependencies": [{"ref": image_ref, "dependsOn": [c["bom-ref"] for c in components]}],
    }
    by_id: dict[str, list[Finding]] = {}
    for finding in findings:
        if _package_key(finding.package) in refs:
            by_id.setdefault(finding.vuln_id, []).append(finding)
    if by_id:
        hidden_by_id = {h.vuln_id: h for h in hidden}
        document["vulnerabilities"] = [
            _vulnerability(vuln_id, group, refs, hidden_by_id.get(vuln_id))
            for vuln_id, group in by_id.items()
        ]
    return document


def cyclonedx_json(document: Mapping[str, Any]) -> str:
    """A document from `cyclonedx` as JSON text (UTF-8 left as is, indented for people reading it)."""
    return json.dumps(document, indent=2, ensure_ascii=False)
