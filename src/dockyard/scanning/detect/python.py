"""Python distributions from `*.dist-info/METADATA` and `*.egg-info` (`PKG-INFO` or the file itself)."""

from __future__ import annotations

import re
from email.parser import HeaderParser
from typing import IO

from dockyard.scanning.layers import Want
from dockyard.scanning.packages import OsIdentity, Package


def pep503(name: str) -> str:
    """The PEP 503 normalized form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


# Core metadata headers come before the (possibly long) description; only they are kept.
_MAX_HEADERS = 1024 * 1024


def headers_of(stream: IO[bytes], size: int, cap: int) -> bytes | None:
    """The header section of a metadata file (up to the first blank line), at most 1 MiB of it."""
    kept = bytearray()
    limit = min(cap, _MAX_HEADERS)
    while len(kept) < limit:
        line = stream.readline(limit - len(kept))
        if not line or not line.strip():
            break
        kept += line
    return bytes(kept) or None


class PythonDetector:
    """Installed distributions' core metadata, wherever site-packages or dist-packages is."""

    want = Want(
        "python",
        ("/**/*.dist-info/METADATA", "/**/*.egg-info/PKG-INFO", "/**/*-packages/*.egg-info"),
        extract=headers_of,
    )

    def parse(self, path: str, data: bytes, layer_digest: str, os: OsIdentity | None) -> list[Package]:
        """The one distribution a metadata file describes."""
        headers = HeaderParser().parsestr(data.decode("utf-8", "replace"), headersonly=True)
        name, version = headers.get("Name"), headers.get("Version")
        if not name or not version:
            return []
        name, version = pep503(str(name).strip()), str(version).strip()
        return [
            Package("PyPI", name, version, name, version, path, layer_digest, f"pkg:pypi/{name}@{version}")
        ]
