"""Detectors and `scan_layers` on hand-made layers: OS identity, dpkg, apk, Python, npm, layer credit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from scan_support import layer

from dockyard.scanning.detect.dpkg import DpkgDetector
from dockyard.scanning.detect.os_release import parse_os_release
from dockyard.scanning.inventory import scan_layers
from dockyard.scanning.layers import Limits
from dockyard.scanning.match import AdvisoryIndex, match_packages
from dockyard.scanning.osv import parse_advisory
from dockyard.scanning.packages import APK, DEB

OS_DEBIAN = (
    b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
)
OS_ALPINE = b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'


def _stanza(name: str, version: str, status: str = "install ok installed", source: str = "") -> str:
    lines = [f"Package: {name}", f"Status: {status}", "Architecture: amd64", f"Version: {version}"]
    if source:
        lines.insert(2, f"Source: {source}")
    lines.append("Description: a package\n continued description line")
    return "\n".join(lines) + "\n"


def _status(*stanzas: str) -> bytes:
    return "\n".join(stanzas).encode()


def test_os_release_parsing() -> None:
    identity = parse_os_release(OS_ALPINE)
    assert identity is not None
    assert (identity.id, identity.version_id, identity.pretty_name) == (
        "alpine",
        "3.19.1",
        "Alpine Linux v3.19",
    )
    assert parse_os_release(b"NAME=nothing\n") is None


def test_dpkg_status_fields() -> None:
    status = _status(
        _stanza("libssl3", "3.0.11-1~deb12u2", source="openssl"),
        _stanza("libc6", "2.36-9+deb12u4", source="glibc (2.36-9)"),
        _stanza("old", "1.0", status="deinstall ok config-files"),
        _stanza("zlib1g", "1:1.2.13.dfsg-1", source="zlib"),
    )
    packages = DpkgDetector().parse("/var/lib/dpkg/status", status, "sha256:l1", parse_os_release(OS_DEBIAN))
    assert [(p.name, p.version, p.source_name, p.source_version) for p in packages] == [
        ("libssl3", "3.0.11-1~deb12u2", "openssl", "3.0.11-1~deb12u2"),
        ("libc6", "2.36-9+deb12u4", "glibc", "2.36-9"),
        ("zlib1g", "1:1.2.13.dfsg-1", "zlib", "1:1.2.13.dfsg-1"),
    ]
    assert packages[0].purl == "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"


def test_upgraded_package_is_credited_to_its_layer_and_deleted_db_disappears() -> None:
    base = layer(
        [
            ("file", "/usr/lib/os-release", OS_DEBIAN),
            ("symlink", "/etc/os-release", "../usr/lib/os-release"),
            ("file", "/var/lib/dpkg/status", _status(_stanza("a", "1.0"), _stanza("b", "1.0"))),
        ]
    )
    upgrade = layer(
        [("file", "/var/lib/dpkg/status", _status(_stanza("a", "1.0"), _stanza("b", "2.0")))], "zstd"
    )
    inventory = scan_layers([base, upgrade])
    assert inventory.os is not None and (inventory.os.id, inventory.os.version_id) == ("debian", "12")
    assert [(p.name, p.version, p.layer_digest) for p in inventory.packages] == [
        ("a", "1.0", base.digest),
        ("b", "2.0", upgrade.digest),
    ]
    gone = layer([("whiteout", "/var/lib/dpkg/status")], "plain")
    base.stream.seek(0)
    upgrade.stream.seek(0)
    assert scan_layers([base, upgrade, gone]).packages == ()


def test_distroless_status_d() -> None:
    files = [
        ("file", "/etc/os-release", OS_DEBIAN),
        (
            "file",
            "/var/lib/dpkg/status.d/base",
            "Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n",
        ),
        (
            "file",
            "/var/lib/dpkg/status.d/libssl3",
            "Package: libssl3\nSource: openssl\nVersion: 3.0.11-1~deb12u2\n",
        ),
        ("file", "/var/lib/dpkg/status.d/libssl3.md5sums", "abc  usr/lib/x\n"),
    ]
    inventory = scan_layers([layer(files)])
    assert [(p.name, p.source_name) for p in inventory.packages] == [
        ("base-files", "base-files"),
        ("libssl3", "openssl"),
    ]


APK_DB = (
    "C:Q1abc=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\no:musl\nT:the musl c library\n\n"
    "C:Q1def=\nP:libcrypto3\nV:3.1.4-r4\nA:x86_64\no:openssl\n\n"
    "C:Q1ghi=\nP:busybox\nV:1.36.1-r15\nA:x86_64\no:busybox\n"
)


def test_alpine_inventory_and_match_by_origin() -> None:
    inventory = scan_layers(
        [layer([("file", "/etc/os-release", OS_ALPINE), ("file", "/lib/apk/db/installed", APK_DB)], "plain")]
    )
    assert [(p.ecosystem, p.name, p.source_name, p.version) for p in inventory.packages] == [
        (APK, "busybox", "busybox", "1.36.1-r15"),
        (APK, "libcrypto3", "openssl", "3.1.4-r4"),
        (APK, "musl", "musl", "1.2.4_git20230717-r4"),
    ]
    records = [
        {"id": "ALPINE-T-1", "affected": [_affected("Alpine:v3.19", "openssl", "3.1.4-r5")]},
        {"id": "ALPINE-T-2", "affected": [_affected("Alpine:v3.19", "busybox", "1.36.1-r15")]},
        {"id": "ALPINE-T-3", "affected": [_affected("Alpine:v3.19", "musl", "1.2.4_git20230717-r5")]},
    ]
    index = AdvisoryIndex(parse_advisory(r) for r in records)
    findings = match_packages(inventory.packages, inventory.os, index)
    assert [(f.vuln_id, f.package.name, f.fixed_version) for f in findings] == [
        ("ALPINE-T-1", "libcrypto3", "3.1.4-r5"),
        ("ALPINE-T-3", "musl", "1.2.4_git20230717-r5"),
    ]


def _affected(ecosystem: str, name: str, fixed: str) -> dict[str, object]:
    return {
        "package": {"ecosystem": ecosystem, "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
    }


def test_python_and_npm_detectors() -> None:
    site = "/usr/local/lib/python3.11/site-packages"
    modules = "/app/node_modules"
    inventory = scan_layers(
        [
            layer(
                [
                    (
                        "file",
                        f"{site}/Jinja2-2.10.dist-info/METADATA",
                        "Metadata-Version: 2.1\nName: Jinja2\nVersion: 2.10\n\nbody",
                    ),
                    (
                        "file",
                        f"{site}/Zope.Interface-4.0.egg-info/PKG-INFO",
                        "Name: Zope.Interface\nVersion: 4.0\n",
                    ),
                    ("file", f"{site}/broken-1.dist-info/METADATA", "no headers here"),
                    (
                        "file",
                        f"{modules}/lodash/package.json",
                        json.dumps({"name": "lodash", "version": "4.17.20"}),
                    ),
                    (
                        "file",
                        f"{modules}/@babel/core/package.json",
                        json.dumps({"name": "@babel/core", "version": "7.0.0"}),
                    ),
                    ("file", f"{modules}/lodash/node_modules/x/package.json", "{not json"),
                    ("file", f"{modules}/unversioned/package.json", json.dumps({"name": "unversioned"})),
                    # A description far past the header cap: only the headers are read.
                    (
                        "file",
                        f"{site}/big-1.0.dist-info/METADATA",
                        "Name: Big\nVersion: 1.0\n\n" + "long description\n" * 200_000,
                    ),
                    # A manifest over the cap is skipped, not read and not an error.
                    (
                        "file",
                        f"{modules}/huge/package.json",
                        json.dumps({"name": "huge", "version": "1.0.0", "x": "y" * 5_000_000}),
                    ),
                ]
            )
        ],
        Limits(max_file_bytes=3_000_000),
    )
    assert inventory.os is None
    assert [(p.ecosystem, p.name, p.version, p.purl) for p in inventory.packages] == [
        ("PyPI", "big", "1.0", "pkg:pypi/big@1.0"),
        ("PyPI", "jinja2", "2.10", "pkg:pypi/jinja2@2.10"),
        ("PyPI", "zope-interface", "4.0", "pkg:pypi/zope-interface@4.0"),
        ("npm", "@babel/core", "7.0.0", "pkg:npm/%40babel/core@7.0.0"),
        ("npm", "lodash", "4.17.20", "pkg:npm/lodash@4.17.20"),
    ]


def _dpkg_lt(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0


def test_real_dpkg_status_matches_hand_written_debian_records() -> None:
    status = Path("/var/lib/dpkg/status").read_bytes()
    base = layer([("file", "/etc/os-release", OS_DEBIAN), ("file", "/var/lib/dpkg/status", status)])
    inventory = scan_layers([base])
    installed = [p for p in inventory.packages if p.ecosystem == DEB]
    assert len(installed) == status.count(b"\nStatus: install ok installed") + status.startswith(
        b"Status: install"
    )
    # A real binary package built from a differently named source package, as found on this machine.
    target = next(p for p in installed if p.source_name != p.name)
    above, below = target.source_version + "+1", target.source_version + "~"
    assert _dpkg_lt(target.source_version, above) and _dpkg_lt(below, target.source_version)
    records = [
        {"id": "DEB-T-AFFECTED", "affected": [_affected("Debian:12", target.source_name, above)]},
        {"id": "DEB-T-FIXED", "affected": [_affected("Debian:12", target.source_name, below)]},
        {"id": "DEB-T-BINARY-NAME", "affected": [_affected("Debian:12", target.name, above)]},
    ]
    findings = match_packages(
        inventory.packages, inventory.os, AdvisoryIndex(parse_advisory(r) for r in records)
    )
    built_from_source = {p.name for p in installed if p.source_name == target.source_name}
    assert {f.vuln_id for f in findings} == {"DEB-T-AFFECTED"} | (
        {"DEB-T-BINARY-NAME"} if any(p.source_name == target.name for p in installed) else set()
    )
    assert {f.package.name for f in findings if f.vuln_id == "DEB-T-AFFECTED"} == built_from_source
    assert all(
        f.fixed_version == above and f.layer_digest == base.digest
        for f in findings
        if f.vuln_id == "DEB-T-AFFECTED"
    )
