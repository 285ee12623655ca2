"""RPM packages from `rpmdb.sqlite` (RHEL 9, Rocky, Alma, Fedora 33+): header blobs parsed in pure Python.

The database is opened from the bytes kept by the layer reader (`sqlite3` deserialize), never written to
disk. Its schema is the image's, so untrusted: `Packages` must be a plain table (a view or a generated
column could compute rows or values without end), and no value may be longer than the file itself.

Each `Packages.blob` is an rpm header without its lead: index count, data length, 16-byte index entries
(tag, type, offset, count; big-endian), then the data store.
"""

from __future__ import annotations

import sqlite3
import struct
from urllib.parse import quote

from dockyard.scanning.layers import Want
from dockyard.scanning.packages import RPM, OsIdentity, Package

__all__ = ["RpmDetector", "parse_header"]

TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_ARCH, TAG_SOURCERPM = 1000, 1001, 1002, 1003, 1022, 1044
_STRING, _INT32, _I18NSTRING = 6, 4, 9
_WANTED = {TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_ARCH, TAG_SOURCERPM}
# More index entries than any real header has; a bound on work for a hostile blob.
_MAX_ENTRIES = 1 << 16


def parse_header(blob: bytes) -> dict[int, str | int]:
    """The NAME, VERSION, RELEASE, EPOCH, ARCH and SOURCERPM tags of one header blob (those present).

    Raises `ValueError` if the blob's index or offsets do not fit inside it.
    """
    if len(blob) < 8:
        raise ValueError("header shorter than its preamble")
    count, data_length = struct.unpack_from(">II", blob, 0)
    store = 8 + 16 * count
    if count > _MAX_ENTRIES or store + data_length > len(blob):
        raise ValueError("header index or data store larger than the blob")
    data = blob[store : store + data_length]
    tags: dict[int, str | int] = {}
    for i in range(count):
        tag, kind, offset, _count = struct.unpack_from(">iIiI", blob, 8 + 16 * i)
        if tag not in _WANTED:
            continue
        if offset < 0 or offset >= len(data):
            raise ValueError(f"tag {tag} points outside the data store")
        if kind in (_STRING, _I18NSTRING):
            end = data.find(b"\0", offset)
            if end < 0:
                raise ValueError(f"tag {tag} string is not terminated")
            tags[tag] = data[offset:end].decode("utf-8", "replace")
        elif kind == _INT32 and offset + 4 <= len(data):
            tags[tag] = struct.unpack_from(">i", data, offset)[0]
    return tags


def _source(source_rpm: str) -> tuple[str, str] | None:
    """(name, version-release) of `openssl-3.0.7-24.el9.src.rpm`."""
    stem = source_rpm.removesuffix(".rpm").rpartition(".")[0]
    name, _, rest = stem.rpartition("-")
    name, _, version = name.rpartition("-")
    if not name or not version or not rest:
        return None
    return name, f"{version}-{rest}"


def _plain_table(connection: sqlite3.Connection) -> bool:
    """Whether `Packages` is a table whose columns are all stored (no view, no generated column)."""
    kind = connection.execute("SELECT type FROM sqlite_schema WHERE name = 'Packages'").fetchone()
    if kind is None or kind[0] != "table":
        return False
    # table_xinfo's `hidden` is 2 or 3 for generated columns (1 for hidden columns of virtual tables).
    return all(row[6] == 0 for row in connection.execute("PRAGMA table_xinfo('Packages')"))


def _open(data: bytes) -> sqlite3.Connection:
    image = bytearray(data)
    # A WAL-mode database (format bytes 18/19 = 2) cannot be read from memory; the copy is ours to mark
    # as rollback-journal, which reads the same pages.
    if len(image) >= 20 and image[:16] == b"SQLite format 3\0":
        image[18:20] = b"\x01\x01"
    connection = sqlite3.connect(":memory:")
    connection.deserialize(bytes(image))
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max(len(image), 1))
    connection.execute("PRAGMA query_only = ON")
    connection.execute("PRAGMA trusted_schema = OFF")
    return connection


class RpmDetector:
    """rpm's sqlite database, in either place distributions keep it."""

    want = Want("rpm", ("/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite"))

    def parse(self, path: str, data: bytes, layer_digest: str, os: OsIdentity | None) -> list[Package]:
        """Installed packages in one rpmdb.sqlite; unreadable headers are skipped."""
        try:
            connection = _open(data)
            try:
                if not _plain_table(connection):
                    return []
                blobs = [row[0] for row in connection.execute("SELECT blob FROM Packages")]
            finally:
                connection.close()
        except sqlite3.Error:
            return []
        packages = []
        distro = os.id if os else "rpm"
        for blob in blobs:
            if not isinstance(blob, bytes):
                continue
            try:
                tags = parse_header(blob)
            except ValueError:
                continue
            name, version, release = tags.get(TAG_NAME), tags.get(TAG_VERSION), tags.get(TAG_RELEASE)
            if not isinstance(name, str) or not isinstance(version, str) or not isinstance(release, str):
                continue
            # gpg-pubkey entries are imported keys, not software.
            if name == "gpg-pubkey":
                continue
            epoch = tags.get(TAG_EPOCH)
            evr = (
                f"{epoch}:{version}-{release}" if isinstance(epoch, int) and epoch else f"{version}-{release}"
            )
            source_rpm = tags.get(TAG_SOURCERPM)
            source = _source(source_rpm) if isinstance(source_rpm, str) else None
            arch = tags.get(TAG_ARCH)
            qualifiers = [f"arch={quote(arch)}"] if isinstance(arch, str) and arch else []
            if isinstance(epoch, int) and epoch:
                qualifiers.append(f"epoch={epoch}")
            qualifier = "?" + "&".join(qualifiers) if qualifiers else ""
            packages.append(
                Package(
                    ecosystem=RPM,
                    name=name,
                    version=evr,
                    source_name=source[0] if source else name,
                    source_version=source[1] if source else evr,
                    path=path,
                    layer_digest=layer_digest,
                    purl=f"pkg:rpm/{distro}/{quote(name)}@{quote(version)}-{quote(release)}{qualifier}",
                )
            )
        return packages
