"""OSV advisory records (https://ossf.github.io/osv-schema/) as frozen dataclasses, and streaming readers.

The readers yield one `Advisory` at a time and hold at most one record's JSON in memory, from a zip as
osv.dev publishes `<Ecosystem>/all.zip`, a directory of JSON files, or one JSON file (a record or a list).
Withdrawn records are skipped unless asked for (an importer needs them to drop what it stored before).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from dockyard.scanning.errors import AdvisoryFormatError

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "Advisory",
    "Affected",
    "AffectedPackage",
    "Event",
    "Range",
    "Severity",
    "iter_directory",
    "iter_json_file",
    "iter_zip",
    "parse_advisory",
    "read_advisories",
]

# The largest real OSV records (kernel CVEs with many ranges) are a few hundred KiB.
DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024
_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")


@dataclass(frozen=True)
class Severity:
    """A severity score: `type` is CVSS_V2, CVSS_V3, CVSS_V4 or Ubuntu; `score` a vector or label."""

    type: str
    score: str


@dataclass(frozen=True)
class Event:
    """One range event: `kind` is introduced, fixed, last_affected or limit."""

    kind: str
    value: str


@dataclass(frozen=True)
class Range:
    """A version range: `type` ECOSYSTEM, SEMVER or GIT, and its events in record order."""

    type: str
    events: tuple[Event, ...]
    repo: str | None = None


@dataclass(frozen=True)
class AffectedPackage:
    """The package an `affected` entry names."""

    ecosystem: str
    name: str
    purl: str | None = None


@dataclass(frozen=True)
class Affected:
    """One `affected` entry; `ecosystem_specific` and `database_specific` are kept as read (read-only by
    convention)."""

    package: AffectedPackage
    ranges: tuple[Range, ...]
    versions: tuple[str, ...]
    severity: tuple[Severity, ...] = ()
    ecosystem_specific: Mapping[str, Any] | None = None
    database_specific: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Advisory:
    """One OSV record. `aliases` name the same vulnerability in other databases; `upstream` the
    vulnerabilities this record derives from (a distribution's record of an upstream CVE)."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    details: str
    modified: datetime | None
    withdrawn: datetime | None
    severity: tuple[Severity, ...]
    affected: tuple[Affected, ...]
    database_specific: Mapping[str, Any] | None = None
    published: datetime | None = None
    upstream: tuple[str, ...] = ()


def _time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise AdvisoryFormatError(f"{field} is not a string")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise AdvisoryFormatError(f"{field} is not an RFC 3339 time: {value!r}") from exc


def _strings(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AdvisoryFormatError(f"{field} is not a list of strings")
    return tuple(value)


def _objects(value: Any, field: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise AdvisoryFormatError(f"{field} is not a list of objects")
    return value


def _str(obj: Mapping[str, Any], key: str, field: str, *, required: bool = False) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise AdvisoryFormatError(f"{field}.{key} is missing or not a string")
    return value


def _severities(value: Any, field: str) -> tuple[Severity, ...]:
    return tuple(
        Severity(_str(s, "type", field, required=True), _str(s, "score", field, required=True))
        for s in _objects(value, field)
    )


def _range(obj: Mapping[str, Any]) -> Range:
    events: list[Event] = []
    for event in _objects(obj.get("events"), "events"):
        kinds = [k for k in _EVENT_KINDS if k in event]
        if len(kinds) != 1 or not isinstance(event[kinds[0]], str):
            raise AdvisoryFormatError(f"range event {event!r} has not exactly one known kind")
        events.append(Event(kinds[0], event[kinds[0]]))
    repo = obj.get("repo")
    return Range(
        _str(obj, "type", "ranges", required=True), tuple(events), repo if isinstance(repo, str) else None
    )


def _affected(obj: Mapping[str, Any]) -> Affected:
    package = obj.get("package")
    if not isinstance(package, dict):
        raise AdvisoryFormatError("affected.package is missing")
    purl = package.get("purl")
    db_specific = obj.get("database_specific")
    eco_specific = obj.get("ecosystem_specific")
    return Affected(
        package=AffectedPackage(
            ecosystem=_str(package, "ecosystem", "affected.package", required=True),
            name=_str(package, "name", "affected.package", required=True),
            purl=purl if isinstance(purl, str) else None,
        ),
        ranges=tuple(_range(r) for r in _objects(obj.get("ranges"), "affected.ranges")),
        versions=_strings(obj.get("versions"), "affected.versions"),
        severity=_severities(obj.get("severity"), "affected.severity"),
        ecosystem_specific=eco_specific if isinstance(eco_specific, dict) else None,
        database_specific=db_specific if isinstance(db_specific, dict) else None,
    )


def parse_advisory(record: Any) -> Advisory:
    """Build an `Advisory` from one decoded OSV JSON object; raises `AdvisoryFormatError` if malformed."""
    if not isinstance(record, dict):
        raise AdvisoryFormatError("an OSV record must be a JSON object")
    vuln_id = _str(record, "id", "record", required=True)
    try:
        db_specific = record.get("database_specific")
        return Advisory(
            id=vuln_id,
            aliases=_strings(record.get("aliases"), "aliases"),
            summary=_str(record, "summary", "record"),
            details=_str(record, "details", "record"),
            modified=_time(record.get("modified"), "modified"),
            withdrawn=_time(record.get("withdrawn"), "withdrawn"),
            severity=_severities(record.get("severity"), "severity"),
            affected=tuple(_affected(a) for a in _objects(record.get("affected"), "affected")),
            database_specific=db_specific if isinstance(db_specific, dict) else None,
            published=_time(record.get("published"), "published"),
            upstream=_strings(record.get("upstream"), "upstream"),
        )
    except AdvisoryFormatError as exc:
        raise AdvisoryFormatError(f"{vuln_id}: {exc}") from None


def _decode(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdvisoryFormatError(f"{where}: not valid JSON ({exc})") from exc


def _wanted(advisory: Advisory, include_withdrawn: bool) -> bool:
    return include_withdrawn or advisory.withdrawn is None


def _parse_at(record: Any, where: str) -> Advisory:
    try:
        return parse_advisory(record)
    except AdvisoryFormatError as exc:
        raise AdvisoryFormatError(f"{where}: {exc}") from None


def iter_zip(
    path: Path,
    *,
    include_withdrawn: bool = False,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[Advisory]:
    """Advisories from a zip of one-record JSON files (osv.dev's `all.zip`), one member at a time."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise AdvisoryFormatError(f"{path}: not a readable zip ({exc})") from exc
    with archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            where = f"{path}:{info.filename}"
            if info.file_size > max_record_bytes:
                raise AdvisoryFormatError(f"{where}: record larger than {max_record_bytes} bytes")
            try:
                with archive.open(info) as member:
                    # Read one byte past the limit: the declared size in a hostile zip may lie.
                    data = member.read(max_record_bytes + 1)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise AdvisoryFormatError(f"{where}: corrupt member ({exc})") from exc
            if len(data) > max_record_bytes:
                raise AdvisoryFormatError(f"{where}: record larger than {max_record_bytes} bytes")
            advisory = _parse_at(_decode(data, where), where)
            if _wanted(advisory, include_withdrawn):
                yield advisory


def iter_directory(
    path: Path,
    *,
    include_withdrawn: bool = False,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[Advisory]:
    """Advisories from every `*.json` file under `path` (recursively, in name order)."""
    for file in sorted(p for p in path.rglob("*.json") if p.is_file()):
        yield from iter_json_file(
            file, include_withdrawn=include_withdrawn, max_record_bytes=max_record_bytes
        )


def _iter_json_values(stream: IO[str], where: str, max_record_bytes: int) -> Iterator[Any]:
    """Top-level JSON values of a file holding one value or a list of them, decoded one at a time."""
    decoder = json.JSONDecoder()
    buffer = ""
    eof = False
    in_list: bool | None = None
    need_comma = False

    def fill() -> bool:
        nonlocal buffer, eof
        if eof:
            return False
        # Grow reads with the buffer, so a large record is re-decoded a logarithmic number of times.
        chunk = stream.read(max(1 << 16, len(buffer)))
        if not chunk:
            eof = True
            return False
        buffer += chunk
        return True

    while True:
        buffer = buffer.lstrip()
        if not buffer and not fill():
            break
        buffer = buffer.lstrip()
        if not buffer:
            continue
        if in_list is None:
            in_list = buffer[0] == "["
            if in_list:
                buffer = buffer[1:]
                continue
        elif in_list:
            if buffer[0] == "]":
                buffer = buffer[1:]
                in_list = False
                continue
            if buffer[0] == "," and need_comma:
                buffer = buffer[1:]
                need_comma = False
                continue
            if need_comma or buffer[0] == ",":
                raise AdvisoryFormatError(f"{where}: list items must be separated by one comma")
        else:
            raise AdvisoryFormatError(f"{where}: unexpected data after the JSON value")
        while True:
            try:
                value, end = decoder.raw_decode(buffer)
            except json.JSONDecodeError as exc:
                if len(buffer) > max_record_bytes:
                    raise AdvisoryFormatError(
                        f"{where}: record larger than {max_record_bytes} bytes"
                    ) from exc
                if not fill():
                    raise AdvisoryFormatError(f"{where}: not valid JSON ({exc.msg})") from exc
                continue
            break
        buffer = buffer[end:]
        need_comma = bool(in_list)
        yield value
    if in_list:
        raise AdvisoryFormatError(f"{where}: unterminated JSON list")


def iter_json_file(
    path: Path,
    *,
    include_withdrawn: bool = False,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[Advisory]:
    """Advisories from one JSON file holding a record or a list of records, decoded one at a time."""
    try:
        stream = path.open(encoding="utf-8")
    except OSError as exc:
        raise AdvisoryFormatError(f"{path}: cannot open ({exc})") from exc
    with stream:
        try:
            for record in _iter_json_values(stream, str(path), max_record_bytes):
                advisory = _parse_at(record, str(path))
                if _wanted(advisory, include_withdrawn):
                    yield advisory
        except UnicodeDecodeError as exc:
            raise AdvisoryFormatError(f"{path}: not UTF-8 ({exc})") from exc


def read_advisories(
    path: Path,
    *,
    include_withdrawn: bool = False,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[Advisory]:
    """Advisories from a zip, a directory or a JSON file, whichever `path` is."""
    if path.is_dir():
        return iter_directory(path, include_withdrawn=include_withdrawn, max_record_bytes=max_record_bytes)
    if zipfile.is_zipfile(path):
        return iter_zip(path, include_withdrawn=include_withdrawn, max_record_bytes=max_record_bytes)
    return iter_json_file(path, include_withdrawn=include_withdrawn, max_record_bytes=max_record_bytes)
