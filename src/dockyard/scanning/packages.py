"""What detectors find in an image: installed packages and the operating system's identity."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["APK", "DEB", "RPM", "OsIdentity", "Package"]

# Ecosystem values of OS packages: the package format. Which advisory ecosystem applies (`Debian:12`,
# `Alpine:v3.19`, ...) depends on the image's OS, so the matcher decides it. Language packages use OSV's
# names directly: `PyPI`, `npm`, `Go`, `Maven`.
DEB = "deb"
APK = "apk"
RPM = "rpm"


@dataclass(frozen=True)
class Package:
    """One installed package, credited to the layer that first holds it in its package database.

    `source_name`/`source_version` are the source package (Debian `Source:`, Alpine origin, RPM source
    rpm) and equal `name`/`version` where the ecosystem has no such notion. `path` is the file it was
    read from, absolute inside the image.
    """

    ecosystem: str
    name: str
    version: str
    source_name: str
    source_version: str
    path: str
    layer_digest: str
    purl: str | None = None


@dataclass(frozen=True)
class OsIdentity:
    """The image's operating system, from `os-release`: `id` (`debian`, `ubuntu`, `alpine`, ...) and
    `version_id` (`12`, `22.04`, `3.19.1`); `id_like` lists the distributions it derives from."""

    id: str
    version_id: str
    pretty_name: str = ""
    version_codename: str = ""
    id_like: tuple[str, ...] = ()
