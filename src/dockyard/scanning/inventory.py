"""An image's software inventory: its OS and installed packages, read from its layers in one pass."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dockyard.scanning.detect import DETECTORS, Detector
from dockyard.scanning.detect.os_release import WANT as OS_RELEASE
from dockyard.scanning.detect.os_release import detect_os
from dockyard.scanning.layers import ImageFiles, Layer, Limits, read_layers
from dockyard.scanning.packages import OsIdentity, Package

__all__ = ["Inventory", "inventory_of", "scan_layers"]


@dataclass(frozen=True)
class Inventory:
    """What an image contains: its OS (None if it has no os-release) and packages, sorted."""

    os: OsIdentity | None
    packages: tuple[Package, ...]


def _credited(detector: Detector, files: ImageFiles, path: str, os: OsIdentity | None) -> list[Package]:
    """The packages the file lists now, each credited to the earliest layer whose copy lists the same name
    and version (so an untouched package stays with the layer that installed it, an upgraded one moves)."""
    history = files.history(detector.want.name, path)
    current = history[-1]
    packages = detector.parse(path, current.data, current.layer_digest, os)
    if len(history) == 1 or not packages:
        return packages
    first_seen: dict[tuple[str, str], str] = {}
    for copy in history[:-1]:
        for package in detector.parse(path, copy.data, copy.layer_digest, os):
            first_seen.setdefault((package.name, package.version), copy.layer_digest)
    return [_with_layer(p, first_seen.get((p.name, p.version), current.layer_digest)) for p in packages]


def _with_layer(package: Package, digest: str) -> Package:
    if package.layer_digest == digest:
        return package
    return Package(
        package.ecosystem,
        package.name,
        package.version,
        package.source_name,
        package.source_version,
        package.path,
        digest,
        package.purl,
    )


def inventory_of(files: ImageFiles, detectors: Sequence[Detector] = DETECTORS) -> Inventory:
    """The inventory of already-read image files (see `layers.read_layers`)."""
    os = detect_os(files)
    packages: list[Package] = []
    for detector in detectors:
        for path in files.paths(detector.want.name):
            packages.extend(_credited(detector, files, path, os))
    packages.sort(key=lambda p: (p.ecosystem, p.name, p.version, p.path))
    return Inventory(os, tuple(packages))


def scan_layers(
    layers: Iterable[Layer], limits: Limits | None = None, detectors: Sequence[Detector] = DETECTORS
) -> Inventory:
    """Read `layers` (bottom first) once and return the image's OS and packages.

    Raises a `ScanError` subclass on hostile or unreadable layers (see `layers`).
    """
    files = read_layers(layers, [OS_RELEASE, *(d.want for d in detectors)], limits)
    return inventory_of(files, detectors)
