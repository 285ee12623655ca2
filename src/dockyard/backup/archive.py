"""The backup archive: an uncompressed tar whose first member, `manifest.json`, describes the rest.

    manifest.json                 format and Dockyard version, schema revision, time, tables, blob totals
    blobs/<algorithm>/<hex>       blob bytes (with --with-blobs only), each named by its own digest
    tables/<table>.jsonl.gz       one JSON array per row, columns as the manifest lists them

Table members carry their sha256 in the manifest; a blob member is checked against the digest it is named
by. Reading streams the archive in order (bounded memory whatever its size) and trusts nothing: a member
must be a plain file with exactly a name the manifest expects, with the expected size and hash.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from dockyard.content.digests import new_hasher, parse_digest
from dockyard.content.errors import DigestInvalid, Unsupported

FORMAT = "dockyard-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# The manifest lists tables and missing blobs only; this leaves room for millions of the latter.
MAX_MANIFEST_BYTES = 64 << 20
# One row as JSON (a manifest of at most max_manifest_bytes, base64 encoded, is well below).
MAX_ROW_BYTES = 64 << 20
CHUNK = 1 << 20
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_LABEL = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,99}")
_MEMBER_MODE = 0o600


class ArchiveInvalid(Exception):
    """The archive is not a Dockyard backup this version can read, or it was damaged or altered."""


@dataclass(frozen=True)
class TableEntry:
    """One table member: its columns, row count, stored (compressed) size and sha256."""

    name: str
    columns: list[str]
    binary_columns: list[str]
    rows: int
    size: int
    sha256: str

    @property
    def member(self) -> str:
        """The member's name in the archive."""
        return f"tables/{self.name}.jsonl.gz"


@dataclass(frozen=True)
class BlobTotals:
    """Whether blob bytes are in the archive, how many and how large; blobs the store lacked."""

    included: bool
    count: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Manifest:
    """What the archive holds."""

    dockyard_version: str
    alembic_revision: str
    created_at: str
    source_database: str
    tables: list[TableEntry]
    blobs: BlobTotals
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        """The manifest member's bytes."""
        document = asdict(self)
        for entry, table in zip(document["tables"], self.tables, strict=True):
            entry["member"] = table.member
        # The format first, for whoever opens the file.
        ordered = {"format": document.pop("format"), "format_version": document.pop("format_version")}
        return json.dumps({**ordered, **document}, indent=1).encode()


def blob_member(digest: str) -> str:
    """A blob's member name."""
    algorithm, _, encoded = digest.partition(":")
    return f"blobs/{algorithm}/{encoded}"


def parse_manifest(data: bytes) -> Manifest:
    """Validate the manifest member; ArchiveInvalid names what is wrong."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ArchiveInvalid("manifest.json is not JSON") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ArchiveInvalid("not a Dockyard backup (manifest.json has no format 'dockyard-backup')")
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ArchiveInvalid("manifest.json has no format_version")
    if version > FORMAT_VERSION:
        raise ArchiveInvalid(
            f"the archive has format version {version}, newer than this Dockyard reads ({FORMAT_VERSION}): "
            "restore it with the Dockyard version that made it, or a newer one"
        )
    if version < 1:
        raise ArchiveInvalid(f"unknown archive format version {version}")
    try:
        tables = [_table_entry(entry) for entry in _field(document, "tables", list)]
        blobs = _field(document, "blobs", dict)
        missing = _field(blobs, "missing", list)
        totals = BlobTotals(
            included=_field(blobs, "included", bool),
            count=_count(blobs, "count"),
            bytes=_count(blobs, "bytes"),
            missing=[str(parse_digest(_text(value))) for value in missing],
        )
        manifest = Manifest(
            dockyard_version=_label(document, "dockyard_version"),
            alembic_revision=_label(document, "alembic_revision"),
            created_at=_label(document, "created_at"),
            source_database=_label(document, "source_database"),
            tables=tables,
            blobs=totals,
            format_version=version,
        )
    except (DigestInvalid, Unsupported) as exc:
        raise ArchiveInvalid(f"manifest.json lists a bad digest: {exc}") from exc
    names = [table.name for table in tables]
    if len(set(names)) != len(names):
        raise ArchiveInvalid("manifest.json lists a table twice")
    return manifest


def _field(document: dict[str, Any], key: str, kind: type) -> Any:
    value = document.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ArchiveInvalid(f"manifest.json: {key!r} is missing or not a {kind.__name__}")
    return value


def _label(document: dict[str, Any], key: str) -> str:
    """A short printable value (it is shown on the terminal)."""
    value: str = _field(document, key, str)
    if not _LABEL.fullmatch(value):
        raise ArchiveInvalid(f"manifest.json: {key!r} is not a short printable text")
    return value


def _count(document: dict[str, Any], key: str) -> int:
    value: int = _field(document, key, int)
    if value < 0:
        raise ArchiveInvalid(f"manifest.json: {key!r} is negative")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ArchiveInvalid("manifest.json: a text value is not text")
    return value


def _table_entry(entry: Any) -> TableEntry:
    if not isinstance(entry, dict):
        raise ArchiveInvalid("manifest.json: a table entry is not an object")
    name = _field(entry, "name", str)
    if not _TABLE_NAME.fullmatch(name):
        raise ArchiveInvalid(f"manifest.json: bad table name {name[:80]!r}")
    columns = [_text(value) for value in _field(entry, "columns", list)]
    binary = [_text(value) for value in _field(entry, "binary_columns", list)]
    sha256 = _field(entry, "sha256", str)
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ArchiveInvalid(f"manifest.json: bad sha256 for table {name}")
    return TableEntry(name, columns, binary, _count(entry, "rows"), _count(entry, "size"), sha256)


# --- writing ----------------------------------------------------------------------------------------------


class TableSpool:
    """A table's rows compressed into an anonymous temporary file (owner-only, gone when closed), so the
    archive can start with a manifest that knows every table's size and hash."""

    def __init__(self, directory: Path, name: str, columns: list[str], binary_columns: list[str]) -> None:
        self.name, self.columns, self.binary_columns = name, columns, binary_columns
        self.file: IO[bytes] = tempfile.TemporaryFile(dir=directory, prefix=".dockyard-backup-")  # noqa: SIM115 (closed by close())
        self._gzip = gzip.GzipFile(fileobj=self.file, mode="wb", mtime=0)
        self.rows = 0

    def write(self, rows: Iterable[list[Any]]) -> None:
        """Append rows (lists of JSON values)."""
        for row in rows:
            self._gzip.write(json.dumps(row, separators=(",", ":")).encode())
            self._gzip.write(b"\n")
            self.rows += 1

    def finish(self) -> TableEntry:
        """Close the compressed stream; the entry for the manifest."""
        self._gzip.close()
        self.file.flush()
        self.file.seek(0)
        hasher = hashlib.sha256()
        size = 0
        while chunk := self.file.read(CHUNK):
            hasher.update(chunk)
            size += len(chunk)
        self.file.seek(0)
        return TableEntry(self.name, self.columns, self.binary_columns, self.rows, size, hasher.hexdigest())

    def rows_back(self) -> Iterator[list[Any]]:
        """Read the spooled rows again (after `finish`), then rewind for the archive."""
        self.file.seek(0)
        with gzip.GzipFile(fileobj=self.file, mode="rb") as stream:
            for line in stream:
                yield json.loads(line)
        self.file.seek(0)

    def close(self) -> None:
        """Delete the temporary file."""
        self.file.close()


class _ChunkReader:
    """A file-like view of an iterator of byte chunks, hashing what passes (tarfile reads from it)."""

    def __init__(self, chunks: Iterator[bytes], hasher: Any) -> None:
        self._chunks = chunks
        self._hasher = hasher
        self._pending = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        wanted = size if size >= 0 else 1 << 62
        while wanted > 0:
            if not self._pending:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._pending = memoryview(chunk)
            part = bytes(self._pending[:wanted])
            self._pending = self._pending[len(part) :]
            wanted -= len(part)
            parts.append(part)
        data = b"".join(parts)
        self._hasher.update(data)
        return data


class ArchiveWriter:
    """Writes members into an open file, in the order the reader expects."""

    def __init__(self, file: BinaryIO, mtime: float) -> None:
        self._tar = tarfile.TarFile(fileobj=file, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK)
        self._mtime = mtime

    def _info(self, name: str, size: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, _MEMBER_MODE, int(self._mtime)
        return info

    def add_manifest(self, manifest: Manifest) -> None:
        """The first member."""
        data = manifest.to_json()
        self._tar.addfile(self._info(MANIFEST_NAME, len(data)), io.BytesIO(data))

    def add_blob(self, digest: str, size: int, chunks: Iterator[bytes]) -> bool:
        """Stream a blob in; False when its bytes do not match its digest (the archive is then unusable)."""
        hasher = new_hasher(parse_digest(digest).algorithm)
        self._tar.addfile(self._info(blob_member(digest), size), _ChunkReader(chunks, hasher))
        return f"{digest.partition(':')[0]}:{hasher.hexdigest()}" == digest

    def add_table(self, spool: TableSpool, entry: TableEntry) -> None:
        """Copy a spooled table in."""
        spool.file.seek(0)
        self._tar.addfile(self._info(entry.member, entry.size), spool.file)

    def close(self) -> None:
        """Write the end-of-archive marker."""
        self._tar.close()


# --- reading ----------------------------------------------------------------------------------------------


@dataclass
class BlobMember:
    """A blob on its way out of the archive: iterate `chunks` to the end, which checks the digest."""

    digest: str
    size: int
    chunks: Iterator[bytes]


@dataclass
class TableMember:
    """A table on its way out of the archive: iterate `rows` to the end, which checks count and sha256."""

    entry: TableEntry
    rows: Iterator[list[Any]]


def verify(path: Path) -> Manifest:
    """Read the whole archive once, checking every member against the manifest; the manifest."""
    blob_count = blob_bytes = 0
    manifest: Manifest | None = None
    for member in read(path):
        if isinstance(member, Manifest):
            manifest = member
        elif isinstance(member, BlobMember):
            for _ in member.chunks:
                pass
            blob_count += 1
            blob_bytes += member.size
        else:
            for _ in member.rows:
                pass
    assert manifest is not None
    if (blob_count, blob_bytes) != (manifest.blobs.count, manifest.blobs.bytes):
        raise ArchiveInvalid(
            f"the archive holds {blob_count} blobs ({blob_bytes} bytes), its manifest says "
            f"{manifest.blobs.count} ({manifest.blobs.bytes} bytes): it is incomplete"
        )
    return manifest


def read(path: Path) -> Iterator[Manifest | BlobMember | TableMember]:
    """The manifest, then each member in archive order. Each member must be consumed before the next."""
    try:
        with tarfile.open(path, mode="r|") as tar:
            yield from _members(tar)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise ArchiveInvalid(f"the archive is truncated or damaged: {exc}") from exc
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
            raise ArchiveInvalid(f"cannot read the archive: {exc}") from exc
        raise ArchiveInvalid(f"the archive is truncated or damaged: {exc}") from exc


def _members(tar: tarfile.TarFile) -> Iterator[Manifest | BlobMember | TableMember]:
    first = tar.next()
    if first is None or first.name != MANIFEST_NAME or not _plain(first):
        raise ArchiveInvalid("not a Dockyard backup: the first member is not manifest.json")
    if first.size > MAX_MANIFEST_BYTES:
        raise ArchiveInvalid("manifest.json is too large")
    stream = tar.extractfile(first)
    assert stream is not None
    manifest = parse_manifest(stream.read())
    yield manifest
    tables = {entry.member: entry for entry in manifest.tables}
    seen: set[str] = set()
    tables_started = False
    while (info := tar.next()) is not None:
        # tarfile remembers every member it has read; an archive may hold millions of blobs.
        tar.members.clear()  # type: ignore[attr-defined]
        name = info.name
        if name in seen:
            raise ArchiveInvalid(f"the archive holds {name[:200]!r} twice")
        seen.add(name)
        if not _plain(info):
            raise ArchiveInvalid(f"the archive member {name[:200]!r} is not a plain file")
        stream = tar.extractfile(info)
        assert stream is not None
        if name in tables:
            tables_started = True
            entry = tables[name]
            if info.size != entry.size:
                raise ArchiveInvalid(f"{name} has {info.size} bytes, the manifest says {entry.size}")
            yield TableMember(entry, _rows(stream, entry))
        elif not tables_started and manifest.blobs.included and (digest := _blob_digest(name)):
            yield BlobMember(digest, info.size, _blob_chunks(stream, digest))
        else:
            raise ArchiveInvalid(f"unexpected member {name[:200]!r} in the archive")
    absent = [entry.member for entry in manifest.tables if entry.member not in seen]
    if absent:
        raise ArchiveInvalid(f"the archive is incomplete: {', '.join(absent[:5])} missing")


def _plain(info: tarfile.TarInfo) -> bool:
    return info.type in (tarfile.REGTYPE, tarfile.AREGTYPE)


def _blob_digest(name: str) -> str | None:
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "blobs":
        return None
    try:
        digest = str(parse_digest(f"{parts[1]}:{parts[2]}"))
    except (DigestInvalid, Unsupported):
        return None
    return digest if blob_member(digest) == name else None


def _blob_chunks(stream: IO[bytes], digest: str) -> Iterator[bytes]:
    hasher = new_hasher(parse_digest(digest).algorithm)
    while True:
        try:
            chunk = stream.read(CHUNK)
        except (tarfile.TarError, EOFError, OSError) as exc:
            where = blob_member(digest)
            raise ArchiveInvalid(f"the archive is truncated or damaged in {where}: {exc}") from exc
        if not chunk:
            break
        hasher.update(chunk)
        yield chunk
    if f"{digest.partition(':')[0]}:{hasher.hexdigest()}" != digest:
        raise ArchiveInvalid(f"the blob {digest} in the archive does not match its digest (damaged, altered)")


class _HashingReader:
    """Reads a member through, hashing every byte (gzip reads the table through it)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.hasher = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.hasher.update(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def _rows(stream: IO[bytes], entry: TableEntry) -> Iterator[list[Any]]:
    raw = _HashingReader(stream)
    count = 0
    damaged: Exception | None = None
    try:
        with gzip.GzipFile(fileobj=raw, mode="rb") as lines:  # type: ignore[call-overload]
            while line := lines.readline(MAX_ROW_BYTES + 1):
                if len(line) > MAX_ROW_BYTES or not line.endswith(b"\n"):
                    raise ArchiveInvalid(f"{entry.member}: a row is too long or cut off")
                row = json.loads(line)
                if not isinstance(row, list) or len(row) != len(entry.columns):
                    raise ArchiveInvalid(f"{entry.member}: a row does not have the manifest's columns")
                count += 1
                yield row
    except (OSError, EOFError, zlib.error, ValueError, tarfile.TarError) as exc:
        damaged = exc
    try:
        raw.drain()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveInvalid(f"the archive is truncated or damaged in {entry.member}: {exc}") from exc
    if raw.hasher.hexdigest() != entry.sha256:
        raise ArchiveInvalid(f"{entry.member} does not match its sha256 in the manifest (damaged or altered)")
    if damaged is not None:
        raise ArchiveInvalid(f"{entry.member} is damaged: {damaged}") from damaged
    if count != entry.rows:
        raise ArchiveInvalid(f"{entry.member} holds {count} rows, the manifest says {entry.rows}")
