"""The image's OS from os-release (`/etc/os-release`, else `/usr/lib/os-release`)."""

from __future__ import annotations

import shlex

from dockyard.scanning.layers import ImageFiles, Want
from dockyard.scanning.packages import OsIdentity

# os-release is a few hundred bytes; anything near the cap is not one.
WANT = Want("os-release", ("/etc/os-release", "/usr/lib/os-release"), max_bytes=64 * 1024)


def parse_os_release(data: bytes) -> OsIdentity | None:
    """The identity in os-release text (shell-style `KEY=value` lines); None without an ID."""
    fields: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            continue
        fields[key] = " ".join(words)
    if not fields.get("ID"):
        return None
    return OsIdentity(
        id=fields["ID"].lower(),
        version_id=fields.get("VERSION_ID", ""),
        pretty_name=fields.get("PRETTY_NAME", ""),
        version_codename=fields.get("VERSION_CODENAME", ""),
        id_like=tuple(fields.get("ID_LIKE", "").split()),
    )


def detect_os(files: ImageFiles) -> OsIdentity | None:
    """The OS of the merged image, following symlinks such as `/etc/os-release -> ../usr/lib/os-release`."""
    for path in WANT.patterns:
        copy = files.read(WANT.name, path)
        if copy is not None:
            return parse_os_release(copy.data)
    return None
