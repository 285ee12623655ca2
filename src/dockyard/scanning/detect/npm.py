"""npm packages from `node_modules/**/package.json`."""

from __future__ import annotations

import json
from typing import IO
from urllib.parse import quote

from dockyard.scanning.layers import Want
from dockyard.scanning.packages import OsIdentity, Package

# Real manifests are kilobytes; a bigger one is skipped rather than failing the whole scan.
_MAX_MANIFEST = 4 * 1024 * 1024


def _read_manifest(stream: IO[bytes], size: int, cap: int) -> bytes | None:
    if size > min(cap, _MAX_MANIFEST):
        return None
    return stream.read(size)


class NpmDetector:
    """Each installed package's own `package.json`, scoped (`@scope/name`) or not."""

    want = Want(
        "npm",
        ("/**/node_modules/*/package.json", "/**/node_modules/@*/*/package.json"),
        extract=_read_manifest,
    )

    def parse(self, path: str, data: bytes, layer_digest: str, os: OsIdentity | None) -> list[Package]:
        """The package a `package.json` describes, if it names itself and a version."""
        try:
            manifest = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return []
        if not isinstance(manifest, dict):
            return []
        name, version = manifest.get("name"), manifest.get("version")
        if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
            return []
        purl = f"pkg:npm/{quote(name, safe='/')}@{quote(version)}"
        return [Package("npm", name, version, name, version, path, layer_digest, purl)]
