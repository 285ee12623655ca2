"""The vulnerability database: OSV advisories imported into the metadata database, looked up by matching.

`VulnDatabase(db).import_path(path, source)` reads a zip, directory or JSON file of OSV records and stores
each advisory with the (ecosystem, name) keys `index_keys` gives; importing the same records again changes
nothing, a record whose content changed is overwritten and a withdrawn record is removed. Each batch of
records is one transaction, so a large import never holds the write lock for long. `VulnDatabase` is an
`AdvisoryLookup`, so `match_packages(packages, os, VulnDatabase(db))` matches against what was imported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from dockyard.db import vulndb as queries
from dockyard.db.engine import Database
from dockyard.scanning.match import index_keys
from dockyard.scanning.osv import Advisory, Affected, Range, Severity, parse_advisory, read_advisories

__all__ = ["BATCH_SIZE", "ImportReport", "VulnDatabase", "VulnDbStatus", "advisory_json"]

# Records per write transaction: large enough to amortise commits, small enough to keep each one short.
BATCH_SIZE = 500


@dataclass(frozen=True)
class ImportReport:
    """What one import did; `total` counts every record read, withdrawn ones included."""

    added: int
    updated: int
    unchanged: int
    withdrawn_removed: int
    total: int


@dataclass(frozen=True)
class VulnDbStatus:
    """Advisories stored per source, their total, and when the newest import finished (epoch seconds)."""

    sources: dict[str, int]
    last_import_at: float | None
    total: int


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _severities(severities: tuple[Severity, ...]) -> list[dict[str, str]]:
    return [{"type": s.type, "score": s.score} for s in severities]


def _range(range_: Range) -> dict[str, Any]:
    out: dict[str, Any] = {"type": range_.type, "events": [{e.kind: e.value} for e in range_.events]}
    if range_.repo is not None:
        out["repo"] = range_.repo
    return out


def _affected(entry: Affected) -> dict[str, Any]:
    package: dict[str, str] = {"ecosystem": entry.package.ecosystem, "name": entry.package.name}
    if entry.package.purl is not None:
        package["purl"] = entry.package.purl
    out: dict[str, Any] = {
        "package": package,
        "ranges": [_range(r) for r in entry.ranges],
        "versions": list(entry.versions),
        "severity": _severities(entry.severity),
    }
    if entry.ecosystem_specific is not None:
        out["ecosystem_specific"] = dict(entry.ecosystem_specific)
    if entry.database_specific is not None:
        out["database_specific"] = dict(entry.database_specific)
    return out


def advisory_json(advisory: Advisory) -> str:
    """`advisory` as OSV JSON that `parse_advisory` reads back into an equal `Advisory`.

    Only the fields `Advisory` keeps are written, with sorted keys, so the same record always gives the
    same text and comparing texts tells whether a re-imported record changed.
    """
    record: dict[str, Any] = {
        "id": advisory.id,
        "aliases": list(advisory.aliases),
        "summary": advisory.summary,
        "details": advisory.details,
        "modified": _time(advisory.modified),
        "published": _time(advisory.published),
        "withdrawn": _time(advisory.withdrawn),
        "severity": _severities(advisory.severity),
        "affected": [_affected(a) for a in advisory.affected],
    }
    if advisory.database_specific is not None:
        record["database_specific"] = dict(advisory.database_specific)
    if advisory.upstream:
        # Only when present, so the stored text of records without it stays what it was.
        record["upstream"] = list(advisory.upstream)
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _batches(advisories: Iterable[Advisory], size: int) -> Iterator[list[Advisory]]:
    iterator = iter(advisories)
    while batch := list(islice(iterator, size)):
        yield batch


class VulnDatabase:
    """Advisories in the metadata database; an `AdvisoryLookup`."""

    def __init__(self, db: Database, batch_size: int = BATCH_SIZE) -> None:
        self.db = db
        self.batch_size = batch_size

    def import_path(
        self, path: Path, source: str, progress: Callable[[int], None] | None = None
    ) -> ImportReport:
        """Import the OSV records at `path` (zip, directory or JSON file) under the name `source`.

        `progress(n)` is called after each committed batch with the number of records it read. A bad
        record raises `AdvisoryFormatError`; the batches committed before it stay.
        """
        started = time.time()
        added = updated = unchanged = removed = total = 0
        for batch in _batches(read_advisories(path, include_withdrawn=True), self.batch_size):
            # A record repeated within a batch counts once, as its last version.
            live: dict[str, Advisory] = {}
            withdrawn: set[str] = set()
            for advisory in batch:
                if advisory.withdrawn is None:
                    live[advisory.id] = advisory
                    withdrawn.discard(advisory.id)
                else:
                    withdrawn.add(advisory.id)
                    live.pop(advisory.id, None)
            rows = [
                queries.AdvisoryRow(
                    id=a.id,
                    source=source,
                    modified=_epoch(a.modified),
                    published=_epoch(a.published),
                    summary=a.summary,
                    record=advisory_json(a),
                    keys=frozenset(index_keys(a)),
                )
                for a in live.values()
            ]
            with self.db.write() as conn:
                stored = queries.stored_records(conn, live.keys())
                changed = [r for r in rows if stored.get(r.id) != (r.source, r.record)]
                queries.upsert_advisories(conn, changed, stored.keys())
                removed += queries.delete_advisories(conn, withdrawn)
            added += sum(1 for r in changed if r.id not in stored)
            updated += sum(1 for r in changed if r.id in stored)
            unchanged += len(rows) - len(changed)
            total += len(batch)
            if progress is not None:
                progress(len(batch))
        with self.db.write() as conn:
            queries.record_import(conn, source, started, time.time(), total)
        return ImportReport(
            added=added, updated=updated, unchanged=unchanged, withdrawn_removed=removed, total=total
        )

    def status(self) -> VulnDbStatus:
        """Advisories per source, their total, and when the newest import finished."""
        with self.db.read() as conn:
            sources = queries.counts_by_source(conn)
            last = queries.last_import_at(conn)
        return VulnDbStatus(sources=sources, last_import_at=last, total=sum(sources.values()))

    def lookup(self, ecosystem: str, name: str) -> list[Advisory]:
        """Advisories naming `name` (already normalized) in `ecosystem`, in id order."""
        with self.db.read() as conn:
            records = queries.records_for(conn, ecosystem, name)
        return [parse_advisory(json.loads(record)) for record in records]
