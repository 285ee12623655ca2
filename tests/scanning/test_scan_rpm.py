"""RPM: header blobs in an rpmdb.sqlite built in-test (WAL mode, as rpm leaves it), matched per distro."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

import pytest
from scan_support import layer

from dockyard.scanning.detect.rpm import (
    TAG_ARCH,
    TAG_EPOCH,
    TAG_NAME,
    TAG_RELEASE,
    TAG_SOURCERPM,
    TAG_VERSION,
    parse_header,
)
from dockyard.scanning.inventory import scan_layers
from dockyard.scanning.match import AdvisoryIndex, match_packages
from dockyard.scanning.osv import parse_advisory
from dockyard.scanning.packages import RPM

OS_ROCKY = b'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n'


def header(tags: dict[int, str | int]) -> bytes:
    """An rpm header blob: a region tag like rpm writes, then the given STRING / INT32 tags."""
    entries = [struct.pack(">iIiI", 63, 7, 0, 16)]
    store = bytearray(b"\0" * 16)
    for tag, value in tags.items():
        if isinstance(value, int):
            store += b"\0" * (-len(store) % 4)
            entries.append(struct.pack(">iIiI", tag, 4, len(store), 1))
            store += struct.pack(">i", value)
        else:
            entries.append(struct.pack(">iIiI", tag, 6, len(store), 1))
            store += value.encode() + b"\0"
    return struct.pack(">II", len(entries), len(store)) + b"".join(entries) + bytes(store)


def _package(name: str, version: str, release: str, source: str, epoch: int | None = None) -> bytes:
    tags: dict[int, str | int] = {
        TAG_NAME: name,
        TAG_VERSION: version,
        TAG_RELEASE: release,
        TAG_ARCH: "x86_64",
        TAG_SOURCERPM: source,
    }
    if epoch is not None:
        tags[TAG_EPOCH] = epoch
    return header(tags)


def rpmdb(path: Path, blobs: list[bytes]) -> bytes:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
    connection.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b,) for b in blobs])
    connection.commit()
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return path.read_bytes()


def test_rpmdb_packages_and_matching(tmp_path: Path) -> None:
    data = rpmdb(
        tmp_path / "rpmdb.sqlite",
        [
            _package("openssl-libs", "3.0.7", "24.el9", "openssl-3.0.7-24.el9.src.rpm", epoch=1),
            _package("bash", "5.1.8", "6.el9_1", "bash-5.1.8-6.el9_1.src.rpm"),
            _package("gpg-pubkey", "350d275d", "6279464b", ""),
            b"\xff\xff\xff\xff\0\0\0\0",
        ],
    )
    assert data[18:20] == b"\x02\x02", "the fixture is a WAL-mode database, as rpm leaves it"
    inventory = scan_layers(
        [layer([("file", "/etc/os-release", OS_ROCKY), ("file", "/var/lib/rpm/rpmdb.sqlite", data)])]
    )
    assert [
        (p.ecosystem, p.name, p.version, p.source_name, p.source_version) for p in inventory.packages
    ] == [
        (RPM, "bash", "5.1.8-6.el9_1", "bash", "5.1.8-6.el9_1"),
        (RPM, "openssl-libs", "1:3.0.7-24.el9", "openssl", "3.0.7-24.el9"),
    ]
    assert inventory.packages[1].purl == "pkg:rpm/rocky/openssl-libs@3.0.7-24.el9?arch=x86_64&epoch=1"
    records = [
        {
            "id": "RLSA-T-1",
            "affected": [
                {
                    "package": {"ecosystem": "Rocky Linux:9", "name": "openssl-libs"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:3.0.7-25.el9_3"}]}
                    ],
                }
            ],
        },
        {
            "id": "RLSA-T-2",
            "affected": [
                {
                    "package": {"ecosystem": "Rocky Linux:9", "name": "bash"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.1.8-6.el9"}]}
                    ],
                }
            ],
        },
    ]
    findings = match_packages(
        inventory.packages, inventory.os, AdvisoryIndex(parse_advisory(r) for r in records)
    )
    assert [(f.vuln_id, f.package.name, f.fixed_version) for f in findings] == [
        ("RLSA-T-1", "openssl-libs", "1:3.0.7-25.el9_3")
    ]
    # Fedora and newer RHEL keep the database under /usr/lib/sysimage; the same file there reads alike.
    moved = scan_layers(
        [layer([("file", "/etc/os-release", OS_ROCKY), ("file", "/usr/lib/sysimage/rpm/rpmdb.sqlite", data)])]
    )
    assert [(p.name, p.version, p.path) for p in moved.packages] == [
        ("bash", "5.1.8-6.el9_1", "/usr/lib/sysimage/rpm/rpmdb.sqlite"),
        ("openssl-libs", "1:3.0.7-24.el9", "/usr/lib/sysimage/rpm/rpmdb.sqlite"),
    ]


@pytest.mark.parametrize(
    "blob",
    [b"", b"\0\0\0\x02\0\0\0\x10", b"\0\0\x10\0\0\0\0\0" + b"\0" * 32],
    ids=["empty", "index-past-end", "huge-count"],
)
def test_hostile_header_blobs(blob: bytes) -> None:
    with pytest.raises(ValueError):
        parse_header(blob)
    bad_offset = struct.pack(">II", 1, 4) + struct.pack(">iIiI", TAG_NAME, 6, 100, 1) + b"abc\0"
    with pytest.raises(ValueError, match="outside"):
        parse_header(bad_offset)


def test_not_a_database_yields_nothing() -> None:
    inventory = scan_layers([layer([("file", "/var/lib/rpm/rpmdb.sqlite", b"garbage" * 100)])])
    assert inventory.packages == ()


@pytest.mark.parametrize(
    "schema",
    [
        # A view computing rows without end, each a large value.
        "CREATE VIEW Packages AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT i AS hnum, zeroblob(1000000) AS blob FROM n",
        # A generated column computing a value far larger than the file.
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB AS (zeroblob(900000000)))",
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, n INT, blob BLOB AS (zeroblob(n)) STORED)",
    ],
    ids=["endless-view", "generated-column", "stored-generated-column"],
)
def test_hostile_schemas_yield_nothing(schema: str, tmp_path: Path) -> None:
    path = tmp_path / "rpmdb.sqlite"
    connection = sqlite3.connect(path)
    connection.execute(schema)
    if "n INT" in schema:
        connection.executemany("INSERT INTO Packages (n) VALUES (?)", [(4,)] * 10)
    elif "TABLE" in schema:
        connection.executemany("INSERT INTO Packages (hnum) VALUES (?)", [(i,) for i in range(1000)])
    connection.commit()
    connection.close()
    files = [("file", "/etc/os-release", OS_ROCKY), ("file", "/var/lib/rpm/rpmdb.sqlite", path.read_bytes())]
    assert scan_layers([layer(files)]).packages == ()
