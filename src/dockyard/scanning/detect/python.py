"""Python distributions from `*.dist-info/METADATA` and `*.egg-info` (`PKG-INFO` or the file itself)."""

from __future__ import annotations

import re
from email.parser import HeaderParser

from dockyard.scanning.layers import Want
from dockyard.scanning.packages import OsIdentity, Package


def pep503(name: str) -> str:
    """The PEP 503 normalized form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


class PythonDetector:
    """Installed distributions' core metadata, wherever site-packages or dist-packages is."""

    want = Want(
        "python",
        ("/**/*.dist-info/METADATA", "/**/*.egg-info/PKG-INFO", "/**/*-packages/*.egg-info"),
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
