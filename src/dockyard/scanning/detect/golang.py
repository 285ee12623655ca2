"""Go binaries: the toolchain version and modules recorded in the build info (`\\xff Go buildinf:`).

Only the Go 1.18+ layout is read, where the version and module strings follow the 32-byte header inline
(flag bit 2); older binaries store pointers into other sections and are skipped.
"""

from __future__ import annotations

import re
from typing import IO

from dockyard.scanning.layers import Want
from dockyard.scanning.packages import OsIdentity, Package

MAGIC = b"\xff Go buildinf:"
_HEADER = 32
_INLINE = 0x2
# Enough for the version and a large module list; kept per binary instead of the binary.
_KEEP = 1 << 20
_CHUNK = 1 << 20
_GO_VERSION = re.compile(r"go(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:(rc|beta)(\d+))?")


def extract_buildinfo(stream: IO[bytes], size: int) -> bytes | None:
    """The bytes from the build-info magic on (at most 1 MiB) of an ELF executable, else None.

    Like Go's own reader, only a 16-byte aligned magic counts: the string also occurs unaligned as a
    constant in binaries that link the build-info reader (the `go` command itself).
    """
    head = stream.read(4)
    if head != b"\x7fELF":
        return None
    window, window_start = head, 0
    while chunk := stream.read(_CHUNK):
        window += chunk
        at = window.find(MAGIC)
        while at >= 0 and (window_start + at) % 16:
            at = window.find(MAGIC, at + 1)
        if at >= 0:
            found = window[at:]
            while len(found) < _KEEP and (more := stream.read(_KEEP - len(found))):
                found += more
            return found[:_KEEP]
        keep = len(MAGIC) - 1
        window_start += len(window) - keep
        window = window[-keep:]
    return None


def _varint_string(data: bytes, offset: int) -> tuple[str, int] | None:
    length, shift = 0, 0
    while offset < len(data) and shift < 64:
        byte = data[offset]
        offset += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            end = offset + length
            if end > len(data):
                return None
            return data[offset:end].decode("utf-8", "replace"), end
    return None


def parse_buildinfo(data: bytes) -> tuple[str, str] | None:
    """(Go version, module info text) from bytes starting at the magic; None if not the inline layout."""
    if not data.startswith(MAGIC) or len(data) < _HEADER or not data[15] & _INLINE:
        return None
    version = _varint_string(data, _HEADER)
    if version is None:
        return None
    modinfo = _varint_string(data, version[1])
    if modinfo is None:
        return None
    text = modinfo[0]
    # The module text sits between two 16-byte sentinels.
    if len(text) >= 33 and text[-17] == "\n":
        text = text[16:-16]
    return version[0], text


def stdlib_version(go_version: str) -> str | None:
    """`go1.21.3` -> `1.21.3`, `go1.21` -> `1.21.0`, `go1.21rc2` -> `1.21.0-rc.2` (OSV's semver form)."""
    match = _GO_VERSION.match(go_version.strip())
    if match is None:
        return None
    major, minor, patch, pre, pre_number = match.groups()
    version = f"{major}.{minor or 0}.{patch or 0}"
    return f"{version}-{pre}.{pre_number}" if pre else version


class GoBinaryDetector:
    """The standard library, the main module and its dependencies (after `=>` replacements) of each Go
    executable."""

    want = Want("go-binary", ("/**",), extract=extract_buildinfo, executables_only=True)

    def parse(self, path: str, data: bytes, layer_digest: str, os: OsIdentity | None) -> list[Package]:
        """Go packages compiled into one executable."""
        info = parse_buildinfo(data)
        if info is None:
            return []
        go_version, modinfo = info
        packages = []
        stdlib = stdlib_version(go_version)
        if stdlib:
            packages.append(self._package("stdlib", stdlib, path, layer_digest))
        modules: list[tuple[str, str]] = []
        for line in modinfo.splitlines():
            fields = line.split("\t")
            if fields[0] in ("mod", "dep") and len(fields) >= 3:
                modules.append((fields[1], fields[2]))
            elif fields[0] == "=>" and modules:
                # A replacement with a version is another module; one without is a local directory.
                modules[-1] = (fields[1], fields[2]) if len(fields) >= 3 and fields[2] else ("", "")
        for module, version in modules:
            if module and version and version != "(devel)":
                packages.append(self._package(module, version, path, layer_digest))
        return packages

    @staticmethod
    def _package(name: str, version: str, path: str, layer_digest: str) -> Package:
        return Package("Go", name, version, name, version, path, layer_digest, f"pkg:golang/{name}@{version}")
