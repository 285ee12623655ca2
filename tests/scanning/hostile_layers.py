"""A corpus of hostile layers, built deterministically: every tar extension with hostile values.

Each `Case` is a gzip-compressed tar stream (a few kilobytes at most) and what the walker must do with
it: fail with a `ScanError` subclass whose message holds `expect`, or, when `expect` is None, read it (a
layer that is odd but legal, whose parsed metadata must still fit the scanner's memory bound). Headers
are written by hand, since `tarfile` refuses to write most of these.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass

BLOCK = 512
MIB = 1024 * 1024
_GNU_MAGIC = b"ustar  \x00"
_USTAR_MAGIC = b"ustar\x0000"


@dataclass(frozen=True)
class Case:
    """One hostile layer: `blob` (gzip), the error class name and message part expected (None: reads)."""

    name: str
    blob: bytes
    error: str | None
    expect: str | None


def _number(value: int, width: int) -> bytes:
    """A header number field: octal when it fits, else GNU base-256 (what huge values need)."""
    if 0 <= value < 8 ** (width - 1):
        return b"%0*o\x00" % (width - 1, value)
    return b"\x80" + value.to_bytes(width - 1, "big")


def header(
    name: bytes = b"file",
    size: int = 0,
    typeflag: bytes = b"0",
    linkname: bytes = b"",
    gnu: bool = False,
    extra: dict[int, bytes] | None = None,
) -> bytes:
    """One 512-byte header block with a valid checksum; `extra` writes raw bytes at offsets."""
    buf = bytearray(BLOCK)
    buf[0 : len(name[:100])] = name[:100]
    buf[100:108] = b"0000644\x00"
    buf[108:116] = b"0000000\x00"
    buf[116:124] = b"0000000\x00"
    buf[124:136] = _number(size, 12)
    buf[136:148] = _number(0, 12)
    buf[156:157] = typeflag
    buf[157 : 157 + len(linkname[:100])] = linkname[:100]
    buf[257:265] = _GNU_MAGIC if gnu else _USTAR_MAGIC
    for offset, value in (extra or {}).items():
        buf[offset : offset + len(value)] = value
    buf[148:156] = b" " * 8
    buf[148:156] = b"%06o\x00 " % sum(buf)
    return bytes(buf)


def pad(data: bytes) -> bytes:
    """`data` padded with NULs to whole blocks."""
    return data + b"\x00" * (-len(data) % BLOCK)


def member(name: bytes, data: bytes = b"", **fields: object) -> bytes:
    """A regular file member with its data."""
    return header(name, len(data), **fields) + pad(data)  # type: ignore[arg-type]


def record(keyword: str, value: bytes) -> bytes:
    """One pax record, its length field counting itself."""
    body = b" " + keyword.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def pax(records: bytes, typeflag: bytes = b"x", size: int | None = None) -> bytes:
    """A pax extended (`x`) or global (`g`) header with its records."""
    return header(b"PaxHeader", len(records) if size is None else size, typeflag) + pad(records)


def end() -> bytes:
    """The two zero blocks ending an archive."""
    return b"\x00" * (2 * BLOCK)


def _gzip(tar: bytes) -> bytes:
    return gzip.compress(tar, compresslevel=9, mtime=0)


def _sparse_old(structs: list[tuple[int, int]], extended: bool, realsize: int, stored: int) -> bytes:
    """An old GNU sparse (`S`) header with up to four map entries in the header itself."""
    fields: dict[int, bytes] = {}
    for i, (offset, numbytes) in enumerate(structs[:4]):
        fields[386 + 24 * i] = _number(offset, 12)
        fields[386 + 24 * i + 12] = _number(numbytes, 12)
    fields[482] = b"\x01" if extended else b"\x00"
    fields[483] = _number(realsize, 12)
    return header(b"sparse", stored, b"S", gnu=True, extra=fields)


def _extension_block(structs: list[tuple[int, int]], extended: bool) -> bytes:
    buf = bytearray(BLOCK)
    for i, (offset, numbytes) in enumerate(structs[:21]):
        buf[24 * i : 24 * i + 12] = _number(offset, 12)
        buf[24 * i + 12 : 24 * i + 24] = _number(numbytes, 12)
    buf[504] = 1 if extended else 0
    return bytes(buf)


def _long(typeflag: bytes, text: bytes, size: int | None = None) -> bytes:
    return header(b"././@LongLink", len(text) if size is None else size, typeflag, gnu=True) + pad(text)


def _zip_directory_bomb(entries: int) -> bytes:
    """A zip whose central directory lists `entries` minimal entries (all named `a`): `zipfile` would
    build an object for each before reading anything."""
    entry = struct.pack(
        "<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0
    )
    directory = (entry + b"a") * entries
    end_record = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(directory), 0, 0)
    return directory + end_record


def _cases() -> list[tuple[str, bytes, str | None, str | None]]:
    ok = member(b"etc/os-release", b"ID=debian\nVERSION_ID=12\n")
    plain = member(b"srv/data", b"")
    symlink_chain = (
        b"".join(
            _long(b"K", f"/s{i + 1}/{'x/' * 2000}".encode()) + header(f"s{i}".encode(), 0, b"2")
            for i in range(38)
        )
        + _long(b"K", b"/s0/" + b"x/" * 2000)
        + header(b"etc/os-release", 0, b"2")
    )
    limit = "LimitExceededError"
    bad = "LayerFormatError"
    many_blocks = _extension_block([(i + 1, 1) for i in range(21)], True)
    zero_lines = b"0\n" * (32 * MIB)
    sparse_records = b"".join(
        record("GNU.sparse.offset", str(i * 10).encode()) + record("GNU.sparse.numbytes", b"0")
        for i in range(18_000)
    )
    distinct = b"".join(record(f"SCHILY.xattr.user.k{i:06d}", b"v") for i in range(30_000))
    return [
        # GNU long names and long links (././@LongLink).
        ("longname-huge-size", _long(b"L", b"x" * 100, size=1 << 80) + end(), limit, "extended header"),
        ("longlink-huge-size", _long(b"K", b"x" * 100, size=1 << 40) + end(), limit, "extended header"),
        ("longname-over-path-max", _long(b"L", b"a/" * 300_000) + ok + end(), limit, "longer than 4096"),
        (
            "longlink-over-path-max",
            _long(b"K", b"b" * 600_000) + header(b"l", 0, b"2") + end(),
            limit,
            "link",
        ),
        ("longname-chain", _long(b"L", b"n" * 200) * 5000 + ok + end(), limit, "extension headers"),
        (
            "longname-and-link-chain",
            (_long(b"L", b"n") + _long(b"K", b"k")) * 3000 + end(),
            limit,
            "extension",
        ),
        # pax records, per file (`x`) and global (`g`).
        ("pax-huge-size", pax(b"", size=1 << 70) + ok + end(), limit, "extended header"),
        ("pax-huge-value", pax(record("comment", b"v" * (3 * MIB))) + ok + end(), limit, "extended header"),
        ("pax-length-too-many-digits", pax(b"9" * 1000 + b" path=x\n") + ok + end(), bad, "length"),
        ("pax-length-past-end", pax(b"99999999999999999999 path=x\n") + ok + end(), bad, "malformed"),
        ("pax-length-zero", pax(b"0 path=x\n") + ok + end(), bad, "malformed"),
        ("pax-no-equals", pax(b"11 pathxxx\n") + ok + end(), bad, "malformed"),
        ("pax-digit-run-redos", pax(record("comment", b"7" * 200_000)) + ok + end(), bad, "digit runs"),
        (
            "pax-hdrcharset-redos",
            pax(b"1" * 100_000 + b" hdrcharset=BINARY\n") + ok + end(),
            bad,
            "digit runs",
        ),
        ("pax-many-records", pax(distinct) + ok + end(), None, None),
        ("pax-chain", pax(record("comment", b"c")) * 2000 + ok + end(), limit, "extension headers"),
        ("pax-negative-size", pax(record("size", b"-100000")) + ok + end(), bad, "negative size"),
        ("pax-size-past-layer", pax(record("size", b"9" * 30)) + plain + end(), limit, "past"),
        (
            "pax-size-too-many-digits",
            pax(record("GNU.sparse.size", b"9" * 5000)) + ok + end(),
            bad,
            "digit runs",
        ),
        ("pax-global-many", (pax(distinct[: 900 * 1024], b"g") + ok) * 3 + end(), None, None),
        ("pax-global-huge", pax(b"", b"g", size=1 << 62) + ok + end(), limit, "extended header"),
        ("pax-global-chain", pax(record("comment", b"g"), b"g") * 2000 + ok + end(), limit, "extension"),
        # GNU sparse maps: old GNU (`S`, extension blocks), pax 0.0, 0.1 and 1.0.
        (
            "sparse-old-endless-extensions",
            _sparse_old([(1, 1)], True, 1 << 40, 0) + many_blocks * 100_000 + end(),
            limit,
            "headers of the member",
        ),
        (
            "sparse-old-out-of-order",
            _sparse_old([(4096, 512), (0, 512)], False, 8192, 1024) + b"\x01" * 1024 + end(),
            bad,
            "sparse region",
        ),
        (
            "sparse-old-more-than-stored",
            _sparse_old([(0, 1 << 30)], False, 1 << 31, 512) + b"\x01" * 512 + end(),
            bad,
            "stored",
        ),
        (
            "sparse-00-large-map",
            pax(sparse_records + record("GNU.sparse.size", b"1000000")) + plain + end(),
            None,
            None,
        ),
        (
            "sparse-01-large-map",
            pax(record("GNU.sparse.map", b",".join([b"0"] * 400_000)) + record("GNU.sparse.size", b"10"))
            + plain
            + end(),
            None,
            None,
        ),
        (
            "sparse-01-not-numbers",
            pax(record("GNU.sparse.map", b"a,b") + record("GNU.sparse.size", b"10")) + ok + end(),
            bad,
            "malformed",
        ),
        (
            "sparse-01-past-size",
            pax(record("GNU.sparse.map", b"0,100") + record("GNU.sparse.size", b"10"))
            + member(b"f", b"x" * 100)
            + end(),
            bad,
            "sparse region",
        ),
        (
            "sparse-10-endless-map",
            pax(record("GNU.sparse.major", b"1") + record("GNU.sparse.minor", b"0"))
            + header(b"f", len(zero_lines), b"0")
            + b"99999999999999\n"
            + zero_lines
            + end(),
            limit,
            "headers of the member",
        ),
        (
            "sparse-10-endless-line",
            pax(record("GNU.sparse.major", b"1") + record("GNU.sparse.minor", b"0"))
            + header(b"f", 8 * MIB, b"0")
            + b"5\n"
            + b"1" * (8 * MIB)
            + end(),
            bad,
            "malformed",
        ),
        (
            "sparse-10-huge-number",
            pax(record("GNU.sparse.major", b"1") + record("GNU.sparse.minor", b"0"))
            + member(b"f", b"1\n" + b"9" * 5000 + b"\n5\n")
            + end(),
            bad,
            "malformed",
        ),
        # A detector's input: a jar whose central directory would cost zipfile far more than its size.
        (
            "jar-central-directory-bomb",
            member(b"app/lib/huge.jar", _zip_directory_bomb(400_000)) + end(),
            None,
            None,
        ),
        # Symlinks whose targets, followed one into the next, would build a path of hundreds of KiB.
        ("symlink-amplification", symlink_chain + end(), limit, "resolves to a path longer"),
        # Declared sizes past what the layer holds or may hold.
        ("member-size-past-layer", header(b"f", 1 << 80) + b"x" * BLOCK, limit, "past"),
        ("member-size-past-end", header(b"f", 1 << 32) + b"x" * BLOCK, bad, "ends inside"),
    ]


def cases() -> list[Case]:
    """The corpus, the same bytes on every call."""
    return [Case(name, _gzip(tar), error, expect) for name, tar, error, expect in _cases()]
