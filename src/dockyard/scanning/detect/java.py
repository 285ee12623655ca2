"""Java archives (jar, war, ear): Maven coordinates from `pom.properties`, else from `MANIFEST.MF`.

Archives nested inside others (`WEB-INF/lib/*.jar`, Spring Boot's `BOOT-INF/lib/*.jar`) are opened too, to a
bounded depth. The layer reader keeps only the coordinates found (as JSON), not the archive.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from typing import IO
from urllib.parse import quote

from dockyard.scanning.errors import LimitExceededError
from dockyard.scanning.layers import Want
from dockyard.scanning.packages import OsIdentity, Package

__all__ = ["JavaArchiveDetector", "coordinates"]

_ARCHIVES = (".jar", ".war", ".ear", ".jpi", ".hpi")
_MAX_DEPTH = 3
# Archives are read whole (zip needs its central directory at the end): ones over the file cap are
# skipped, and so are nested members or metadata files over these sizes, which bounds work on zip bombs.
_MAX_NESTED = 64 * 1024 * 1024
_MAX_METADATA = 1024 * 1024
_MAX_MEMBERS = 100_000
# zipfile parses the whole central directory into objects of a few hundred bytes per entry before any is
# read: a directory of minimal 46-byte entries costs about eight times its size. Bigger ones are skipped.
_MAX_DIRECTORY = 8 * 1024 * 1024
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_ZIP64_EOCD_SIZE = 56
# Decompressed bytes read from one archive tree; overlapping-entry zip bombs repeat one compressed
# stream under many names, so a per-member bound alone does not bound the work.
_MAX_TOTAL = 512 * 1024 * 1024


class _Reads:
    """Decompressed bytes left for one top-level archive and everything nested in it."""

    def __init__(self, total: int) -> None:
        self.left = total

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise LimitExceededError(
                f"Java archive: more than {_MAX_TOTAL} bytes decompressed from its members"
            )


def _properties(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def _manifest(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if line.startswith(" ") and last:
            values[last] += line[1:]
            continue
        key, sep, value = line.partition(":")
        if sep:
            last = key.strip()
            values[last] = value.strip()
    return values


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, reads: _Reads) -> bytes | None:
    if info.file_size > limit:
        return None
    with archive.open(info) as member:
        # The declared size of a hostile zip may lie; never read past the limit.
        data = member.read(limit + 1)
    reads.take(len(data))
    return data if len(data) <= limit else None


def directory_size(data: bytes) -> int | None:
    """The central directory size the archive's end record declares, found as `zipfile` finds it (the
    end record in the last 64 KiB, the ZIP64 record in front of its locator); None without an end record."""
    at = len(data) - _EOCD_SIZE
    if at < 0 or data[at : at + 4] != _EOCD or data[-2:] != b"\0\0":
        at = data.rfind(_EOCD, max(len(data) - (1 << 16) - _EOCD_SIZE, 0))
        if at < 0 or at + _EOCD_SIZE > len(data):
            return None
    size: int = struct.unpack_from("<I", data, at + 12)[0]
    zip64 = at - 20 - _ZIP64_EOCD_SIZE
    if zip64 >= 0 and data[at - 20 : at - 16] == _ZIP64_LOCATOR and data[zip64 : zip64 + 4] == _ZIP64_EOCD:
        size = struct.unpack_from("<Q", data, zip64 + 40)[0]
    return size


def _from_manifest(manifest: dict[str, str]) -> tuple[str, str, str] | None:
    """(group, artifact, version) from Implementation-* headers, else the OSGi bundle name split at its
    last dot (`com.fasterxml.jackson.core.jackson-databind`)."""
    version = manifest.get("Implementation-Version") or manifest.get("Bundle-Version")
    if not version:
        return None
    group, artifact = manifest.get("Implementation-Vendor-Id"), manifest.get("Implementation-Title")
    if group and artifact:
        return group, artifact, version
    bundle = manifest.get("Bundle-SymbolicName", "").split(";", 1)[0].strip()
    group, _, artifact = bundle.rpartition(".")
    if group and artifact:
        return group, artifact, version
    return None


def coordinates(data: bytes, inner: str = "", depth: int = 0, reads: _Reads | None = None) -> list[list[str]]:
    """[group, artifact, version, location inside the archive] for the archive and archives nested in it.

    Raises `LimitExceededError` if the members read decompress to more than 512 MiB in all.
    """
    reads = reads or _Reads(_MAX_TOTAL)
    size = directory_size(data)
    if size is None or size > _MAX_DIRECTORY:
        return []
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()[:_MAX_MEMBERS]
    except (zipfile.BadZipFile, OSError, ValueError):
        return []
    found: list[list[str]] = []
    with archive:
        try:
            for info in infos:
                name = info.filename
                if name.startswith("META-INF/maven/") and name.endswith("/pom.properties"):
                    raw = _read(archive, info, _MAX_METADATA, reads)
                    props = _properties(raw.decode("utf-8", "replace")) if raw else {}
                    if props.get("groupId") and props.get("artifactId") and props.get("version"):
                        found.append([props["groupId"], props["artifactId"], props["version"], inner])
            if not found:
                manifest_info = next((i for i in infos if i.filename == "META-INF/MANIFEST.MF"), None)
                raw = _read(archive, manifest_info, _MAX_METADATA, reads) if manifest_info else None
                identity = _from_manifest(_manifest(raw.decode("utf-8", "replace"))) if raw else None
                if identity:
                    found.append([*identity, inner])
            if depth < _MAX_DEPTH:
                for info in infos:
                    if info.filename.lower().endswith(_ARCHIVES):
                        nested = _read(archive, info, _MAX_NESTED, reads)
                        if nested is not None:
                            where = f"{inner}!/{info.filename}" if inner else info.filename
                            found.extend(coordinates(nested, where, depth + 1, reads))
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError):
            return found
    return found


def extract_coordinates(stream: IO[bytes], size: int, cap: int) -> bytes | None:
    """The archive's coordinates as JSON (what the layer reader keeps); None if over `cap` or it has none."""
    if size > cap:
        return None
    found = coordinates(stream.read(cap))
    return json.dumps(found).encode() if found else None


class JavaArchiveDetector:
    """Maven artifacts in Java archives anywhere in the image."""

    want = Want("java", tuple(f"/**/*{suffix}" for suffix in _ARCHIVES), extract=extract_coordinates)

    def parse(self, path: str, data: bytes, layer_digest: str, os: OsIdentity | None) -> list[Package]:
        """The artifacts recorded for one archive."""
        packages = []
        for group, artifact, version, inner in json.loads(data):
            name = f"{group}:{artifact}"
            location = f"{path}!/{inner}" if inner else path
            purl = f"pkg:maven/{quote(group)}/{quote(artifact)}@{quote(version)}"
            packages.append(Package("Maven", name, version, name, version, location, layer_digest, purl))
        return packages
