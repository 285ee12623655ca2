"""The detector interface: which files to keep while reading layers, and how to read packages from one."""

from __future__ import annotations

from typing import Protocol

from dockyard.scanning.layers import Want
from dockyard.scanning.packages import OsIdentity, Package


class Detector(Protocol):
    """Finds packages of one ecosystem in the files its `want` keeps."""

    @property
    def want(self) -> Want:
        """The files (and how much of each) this detector reads; `want.name` is unique per detector."""
        ...

    def parse(self, path: str, data: bytes, layer_digest: str, os: OsIdentity | None) -> list[Package]:
        """Packages listed in `data`, the kept bytes of the file at `path` as written by `layer_digest`.

        Malformed content yields what can be read (possibly nothing) rather than an error: one bad file
        must not hide the rest of the image.
        """
        ...


def paragraphs(text: str) -> list[dict[str, str]]:
    """Blank-line separated `Key: value` stanzas (dpkg style, continuation lines start with a space)."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, last = {}, ""
        elif line[0] in " \t":
            if last:
                current[last] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            last = key.strip()
            current[last] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas
