"""Debian and Ubuntu packages from `/var/lib/dpkg/status` and distroless `/var/lib/dpkg/status.d/*`."""

from __future__ import annotations

import re
from urllib.parse import quote

from dockyard.scanning.detect.base import paragraphs
from dockyard.scanning.layers import Want
from dockyard.scanning.packages import DEB, OsIdentity, Package

_SOURCE = re.compile(r"(?P<name>\S+)(?:\s+\((?P<version>[^)]+)\))?")


def _purl(name: str, version: str, arch: str, os: OsIdentity | None) -> str:
    distro = os.id if os else "debian"
    qualifiers = [f"arch={arch}"] if arch else []
    if os and os.version_id:
        qualifiers.append(f"distro={os.id}-{os.version_id}")
    suffix = "?" + "&".join(qualifiers) if qualifiers else ""
    return f"pkg:deb/{distro}/{quote(name)}@{quote(version)}{suffix}"


class DpkgDetector:
    """dpkg's database; distroless images keep one stanza file per package, without `Status:`."""

    # A full desktop install's status file is a few MiB.
    want = Want("dpkg", ("/var/lib/dpkg/status", "/var/lib/dpkg/status.d/*"), max_bytes=32 * 1024 * 1024)

    def parse(self, path: str, data: bytes, layer_digest: str, os: OsIdentity | None) -> list[Package]:
        """Installed packages in one dpkg status file."""
        distroless = path.startswith("/var/lib/dpkg/status.d/")
        if distroless and path.endswith(".md5sums"):
            return []
        packages = []
        for stanza in paragraphs(data.decode("utf-8", "replace")):
            name, version = stanza.get("Package"), stanza.get("Version")
            if not name or not version:
                continue
            # Only `install ok installed`: removed packages linger as `deinstall ok config-files`.
            if not distroless and stanza.get("Status", "").split()[-1:] != ["installed"]:
                continue
            source_name, source_version = name, version
            match = _SOURCE.fullmatch(stanza.get("Source", "").strip())
            if match:
                source_name = match["name"]
                source_version = match["version"] or version
            packages.append(
                Package(
                    ecosystem=DEB,
                    name=name,
                    version=version,
                    source_name=source_name,
                    source_version=source_version,
                    path=path,
                    layer_digest=layer_digest,
                    purl=_purl(name, version, stanza.get("Architecture", ""), os),
                )
            )
        return packages
