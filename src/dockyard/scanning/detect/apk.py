"""Alpine packages from apk's database, `/lib/apk/db/installed`."""

from __future__ import annotations

from urllib.parse import quote

from dockyard.scanning.layers import Want
from dockyard.scanning.packages import APK, OsIdentity, Package


class ApkDetector:
    """apk-tools' installed database: stanzas of one-letter fields (P: name, V: version, o: origin)."""

    # The database lists every installed file too, yet stays a few MiB for large images.
    want = Want("apk", ("/lib/apk/db/installed",), max_bytes=32 * 1024 * 1024)

    def parse(self, path: str, data: bytes, layer_digest: str, os: OsIdentity | None) -> list[Package]:
        """Installed packages in one apk database."""
        packages = []
        for block in data.decode("utf-8", "replace").split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.splitlines():
                key, sep, value = line.partition(":")
                if sep and len(key) == 1 and key not in fields:
                    fields[key] = value.strip()
            name, version = fields.get("P"), fields.get("V")
            if not name or not version:
                continue
            arch = fields.get("A", "")
            distro = f"?distro=alpine-{os.version_id}" if os and os.version_id else ""
            qualifier = (f"&arch={arch}" if distro else f"?arch={arch}") if arch else ""
            packages.append(
                Package(
                    ecosystem=APK,
                    name=name,
                    version=version,
                    source_name=fields.get("o") or name,
                    source_version=version,
                    path=path,
                    layer_digest=layer_digest,
                    purl=f"pkg:apk/alpine/{quote(name)}@{quote(version)}{distro}{qualifier}",
                )
            )
        return packages
