"""Daily statistics per repository: pushes and pulls added as they happen, vulnerability snapshots.

Counters are only ever added to (`count = count + n`), so replicas flushing at the same time never lose
each other's counts. Reads answer for a set of repositories in one statement per batch of names.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table, delete, func, select, union
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from dockyard.db.batches import batches
from dockyard.db.content import MANIFEST_REF
from dockyard.db.schema import (
    daily_activity,
    hidden_findings,
    image_findings,
    image_packages,
    manifest_references,
    manifests,
    repositories,
    tags,
    vulnerability_snapshots,
)

# The severities a snapshot keeps, as the scanner names them; anything else counts as unknown.
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
_COLUMNS = {severity: severity.lower() for severity in SEVERITIES}


@dataclass(frozen=True)
class DayActivity:
    """Pushes and pulls of one UTC day (days since the epoch)."""

    day: int
    pushes: int
    pulls: int


def _add(conn: Connection, rows: list[dict[str, int]], column: str) -> None:
    dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(daily_activity)
    stmt = stmt.on_conflict_do_update(
        index_elements=[daily_activity.c.repository_id, daily_activity.c.day],
        set_={column: daily_activity.c[column] + stmt.excluded[column]},
    )
    conn.execute(stmt, rows)


def add_push(conn: Connection, repository_id: int, day: int) -> None:
    """Count one push to the repository on `day`."""
    _add(conn, [{"repository_id": repository_id, "day": day, "pushes": 1, "pulls": 0}], "pushes")


def add_pulls(conn: Connection, counts: Mapping[tuple[str, int], int]) -> None:
    """Add pulls counted by (repository name, day); repositories deleted meanwhile are skipped."""
    names = sorted({name for name, _ in counts})
    ids: dict[str, int] = {}
    for batch in batches(names):
        stmt = select(repositories.c.name, repositories.c.id).where(repositories.c.name.in_(batch))
        ids.update((str(row[0]), int(row[1])) for row in conn.execute(stmt))
    rows = [
        {"repository_id": ids[name], "day": day, "pushes": 0, "pulls": count}
        for (name, day), count in sorted(counts.items())
        if name in ids and count > 0
    ]
    if rows:
        _add(conn, rows, "pulls")


def _per_day_over(stmt: Select[Any], table: Table, names: Collection[str] | None) -> list[Select[Any]]:
    """The per-day statement over every repository (None), or one per batch of the named ones."""
    if names is None:
        return [stmt]
    joined = stmt.join(repositories, repositories.c.id == table.c.repository_id)
    return [joined.where(repositories.c.name.in_(batch)) for batch in batches(sorted(names))]


def activity_by_day(conn: Connection, names: Collection[str] | None, first_day: int) -> list[DayActivity]:
    """Pushes and pulls per day since `first_day`, summed over the named repositories (None: all)."""
    totals: dict[int, list[int]] = {}
    stmt = select(daily_activity.c.day, func.sum(daily_activity.c.pushes), func.sum(daily_activity.c.pulls))
    stmt = stmt.where(daily_activity.c.day >= first_day).group_by(daily_activity.c.day)
    for chunk in _per_day_over(stmt, daily_activity, names):
        for row in conn.execute(chunk):
            found = totals.setdefault(int(row[0]), [0, 0])
            found[0] += int(row[1] or 0)
            found[1] += int(row[2] or 0)
    return [DayActivity(day, pushes, pulls) for day, (pushes, pulls) in sorted(totals.items())]


def _held_images() -> Any:
    """(repository id, image digest) of every tagged manifest and every child of a tagged index."""
    tagged = select(tags.c.repository_id, manifests.c.digest).join(
        manifests, manifests.c.id == tags.c.manifest_id
    )
    children = (
        select(tags.c.repository_id, manifest_references.c.digest)
        .join(manifest_references, manifest_references.c.manifest_id == tags.c.manifest_id)
        .where(manifest_references.c.kind == MANIFEST_REF)
    )
    return union(tagged, children).subquery("held")


def current_severity_counts(conn: Connection) -> dict[int, dict[str, int]]:
    """Visible findings by severity of each repository's tagged images (hidden ones left out), in one
    statement for the whole registry."""
    held = _held_images()
    hidden = (
        select(hidden_findings.c.vuln_id)
        .where(
            hidden_findings.c.repository_id == held.c.repository_id,
            hidden_findings.c.image_digest == image_findings.c.image_digest,
            hidden_findings.c.vuln_id == image_findings.c.vuln_id,
            hidden_findings.c.package == image_packages.c.name,
        )
        .exists()
    )
    stmt = (
        select(held.c.repository_id, image_findings.c.severity, func.count())
        .select_from(held)
        .join(image_findings, image_findings.c.image_digest == held.c.digest)
        .join(
            image_packages,
            (image_packages.c.image_digest == image_findings.c.image_digest)
            & (image_packages.c.seq == image_findings.c.package_seq),
        )
        .where(~hidden)
        .group_by(held.c.repository_id, image_findings.c.severity)
    )
    counts: dict[int, dict[str, int]] = {}
    for row in conn.execute(stmt):
        severity = str(row[1]) if str(row[1]) in _COLUMNS else "UNKNOWN"
        by_severity = counts.setdefault(int(row[0]), {})
        by_severity[severity] = by_severity.get(severity, 0) + int(row[2])
    return counts


def replace_snapshot(conn: Connection, day: int, counts: Mapping[int, Mapping[str, int]]) -> None:
    """The day's snapshot becomes `counts` (a later snapshot the same day replaces an earlier one)."""
    conn.execute(delete(vulnerability_snapshots).where(vulnerability_snapshots.c.day == day))
    rows = [
        {"repository_id": repo_id, "day": day, **{_COLUMNS[s]: by.get(s, 0) for s in SEVERITIES}}
        for repo_id, by in sorted(counts.items())
        if any(by.values())
    ]
    if rows:
        conn.execute(vulnerability_snapshots.insert(), rows)


def snapshots_by_day(
    conn: Connection, names: Collection[str] | None, first_day: int
) -> dict[int, dict[str, int]]:
    """Findings by severity per day since `first_day`, summed over the named repositories (None: all)."""
    columns = [func.sum(vulnerability_snapshots.c[_COLUMNS[s]]) for s in SEVERITIES]
    stmt = select(vulnerability_snapshots.c.day, *columns)
    stmt = stmt.where(vulnerability_snapshots.c.day >= first_day).group_by(vulnerability_snapshots.c.day)
    totals: dict[int, dict[str, int]] = {}
    for chunk in _per_day_over(stmt, vulnerability_snapshots, names):
        for row in conn.execute(chunk):
            found = totals.setdefault(int(row[0]), dict.fromkeys(SEVERITIES, 0))
            for severity, value in zip(SEVERITIES, row[1:], strict=True):
                found[severity] += int(value or 0)
    return totals
