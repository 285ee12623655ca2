"""End to end on real artefacts: a pip-installed tree and a Go binary as layers, against the real feeds."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
import zipfile
from pathlib import Path

from packaging.version import Version

from dockyard.scanning.inventory import scan_layers
from dockyard.scanning.layers import Layer
from dockyard.scanning.match import AdvisoryIndex, match_packages
from dockyard.scanning.osv import parse_advisory, read_advisories

SITE = "usr/local/lib/python3.11/site-packages"


def _tree_layer(root: Path, prefix: str, digest: str) -> Layer:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(root, arcname=prefix)
    buffer.seek(0)
    return Layer(digest, buffer)


def test_pip_tree_finds_the_pysec_advisories(pip_tree: Path, osv_dir: Path) -> None:
    inventory = scan_layers([_tree_layer(pip_tree, SITE, "sha256:pip")])
    assert [(p.name, p.version) for p in inventory.packages] == [("urllib3", "1.24.1")]
    # Expected: every record whose explicit `versions` list names the installed version.
    expected: dict[str, str | None] = {}
    with zipfile.ZipFile(osv_dir / "PyPI.zip") as archive:
        for member in archive.namelist():
            record = json.loads(archive.read(member))
            for affected in record.get("affected", []):
                if affected["package"]["name"].lower() == "urllib3" and "1.24.1" in affected.get(
                    "versions", []
                ):
                    fixes = [
                        Version(e["fixed"])
                        for r in affected["ranges"]
                        if r["type"] == "ECOSYSTEM"
                        for e in r["events"]
                        if "fixed" in e and Version(e["fixed"]) > Version("1.24.1")
                    ]
                    expected[record["id"]] = str(min(fixes)) if fixes else None
    assert len(expected) >= 3
    findings = match_packages(
        inventory.packages, inventory.os, AdvisoryIndex(read_advisories(osv_dir / "PyPI.zip"))
    )
    assert {f.vuln_id: f.fixed_version for f in findings} == expected
    # Read by hand from the records: PYSEC-2019-133 (CVE-2019-11324) is fixed in 1.24.2, PYSEC-2019-132
    # (CVE-2019-11236) in 1.24.3; PYSEC-2023-192 has a 2.x range listed before the 1.x one, whose fix is
    # 1.26.17.
    by_id = {f.vuln_id: f for f in findings}
    assert by_id["PYSEC-2019-133"].fixed_version == "1.24.2"
    assert "CVE-2019-11324" in by_id["PYSEC-2019-133"].aliases
    assert by_id["PYSEC-2019-132"].fixed_version == "1.24.3"
    assert by_id["PYSEC-2023-192"].fixed_version == "1.26.17"
    assert all(f.path.startswith(f"/{SITE}/urllib3-1.24.1.dist-info") for f in findings)
    assert all(f.layer_digest == "sha256:pip" for f in findings)


def _stdlib_tuple(version: str) -> tuple[int, ...]:
    """Go stdlib versions in OSV are `X.Y.Z` or `X.Y.Z-0` (before any pre-release of X.Y.Z)."""
    core, _, pre = version.partition("-")
    parts = tuple(int(p) for p in core.split("."))
    return (*parts, 0 if pre else 1)


def test_go_binary_stdlib_matched_against_go_feed(go_binary: Path, osv_dir: Path) -> None:
    reported = subprocess.run(["go", "version"], capture_output=True, text=True, check=True).stdout
    go_version = re.search(r"go(\d+\.\d+(?:\.\d+)?)\s", reported)
    assert go_version is not None
    installed = go_version[1] if go_version[1].count(".") == 2 else go_version[1] + ".0"

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(go_binary, arcname="usr/local/bin/hello")
        info = tarfile.TarInfo("usr/local/bin/script")
        info.mode, data = 0o755, b"#!/bin/sh\necho not go\n"
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    inventory = scan_layers([Layer("sha256:go", buffer)])
    assert [(p.ecosystem, p.name, p.version, p.path) for p in inventory.packages] == [
        ("Go", "stdlib", installed, "/usr/local/bin/hello")
    ]

    advisories = list(read_advisories(osv_dir / "Go.zip"))
    expected = set()
    for advisory in advisories:
        for affected in advisory.affected:
            if affected.package.name != "stdlib":
                continue
            for range_ in affected.ranges:
                events = sorted(
                    ((0,) if e.value == "0" else _stdlib_tuple(e.value), e.kind) for e in range_.events
                )
                state = False
                for bound, kind in events:
                    if _stdlib_tuple(installed) >= bound:
                        state = kind == "introduced"
                if state:
                    expected.add(advisory.id)
    findings = match_packages(inventory.packages, inventory.os, AdvisoryIndex(advisories))
    assert expected, "this toolchain predates known stdlib fixes"
    assert {f.vuln_id for f in findings} == expected
    # Read by hand from GO-2023-1751 (html/template): fixed in 1.19.9, and again from 1.20.0-0 to 1.20.4.
    by_id = {f.vuln_id: f for f in findings}
    if _stdlib_tuple(installed) < _stdlib_tuple("1.19.9"):
        assert by_id["GO-2023-1751"].fixed_version == "1.19.9"
    else:
        assert "GO-2023-1751" not in by_id
    for finding in findings:
        assert finding.fixed_version is not None
        assert _stdlib_tuple(finding.fixed_version) > _stdlib_tuple(installed)


# npm advisories written by hand from the GitHub advisory database (ranges copied from the published
# records): GHSA-p6mc-m468-83gw (lodash zipObjectDeep, CVE-2020-8203) affects >= 3.7.0 < 4.17.19;
# GHSA-vh95-rmgr-6w4m (minimist prototype pollution, CVE-2020-7598) affects >= 1.0.0 < 1.2.3;
# GHSA-4xc9-xhrj-v574 (lodash defaultsDeep, CVE-2018-16487) affects < 4.17.11, so not 4.17.15.
NPM_ADVISORIES = [
    {
        "id": "GHSA-p6mc-m468-83gw",
        "aliases": ["CVE-2020-8203"],
        "summary": "Prototype Pollution in lodash",
        "affected": [
            {
                "package": {"ecosystem": "npm", "name": "lodash"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "3.7.0"}, {"fixed": "4.17.19"}]}],
            }
        ],
    },
    {
        "id": "GHSA-vh95-rmgr-6w4m",
        "aliases": ["CVE-2020-7598"],
        "summary": "Prototype Pollution in minimist",
        "affected": [
            {
                "package": {"ecosystem": "npm", "name": "minimist"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"fixed": "1.2.3"}]}],
            }
        ],
    },
    {
        "id": "GHSA-4xc9-xhrj-v574",
        "aliases": ["CVE-2018-16487"],
        "summary": "Prototype Pollution in lodash",
        "affected": [
            {
                "package": {"ecosystem": "npm", "name": "lodash"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.11"}]}],
            }
        ],
    },
]


def test_npm_tree_installed_by_npm(npm_tree: Path) -> None:
    app = "usr/src/app"
    inventory = scan_layers([_tree_layer(npm_tree / "node_modules", f"{app}/node_modules", "sha256:npm")])
    assert [(p.ecosystem, p.name, p.version, p.path) for p in inventory.packages] == [
        ("npm", "lodash", "4.17.15", f"/{app}/node_modules/lodash/package.json"),
        ("npm", "minimist", "1.2.0", f"/{app}/node_modules/minimist/package.json"),
    ]
    index = AdvisoryIndex(parse_advisory(record) for record in NPM_ADVISORIES)
    findings = match_packages(inventory.packages, inventory.os, index)
    assert sorted((f.vuln_id, f.package.name, f.fixed_version, f.layer_digest) for f in findings) == [
        ("GHSA-p6mc-m468-83gw", "lodash", "4.17.19", "sha256:npm"),
        ("GHSA-vh95-rmgr-6w4m", "minimist", "1.2.3", "sha256:npm"),
    ]
