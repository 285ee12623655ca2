"""Read queries for browsing (the web UI): manifests with their bytes, referrer counts, READMEs, activity
(the pages of tags are `db.listing.tags_page`, shared with the API).

Each answers for a whole page in one statement (or one per batch of 500), never one per row.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from dockyard.db.audit import AuditRow, about_repository
from dockyard.db.batches import batches
from dockyard.db.schema import (
    audit_events,
    blobs,
    jobs,
    manifests,
    repositories,
    repository_blobs,
    tags,
)

MAX_README = 64 * 1024


@dataclass(frozen=True)
class TaggedRow:
    """A tag with the manifest it points at, bytes included (they are small and bounded at push)."""

    tag: str
    updated_at: float
    digest: str
    media_type: str
    artifact_type: str | None
    content: bytes
    pushed_by: str | None = None


def _tagged(tag: Any, row: Sequence[Any], pushed_by: str | None = None) -> TaggedRow:
    return TaggedRow(str(tag), float(row[0]), str(row[1]), str(row[2]), row[3], bytes(row[4]), pushed_by)


def tag_count(conn: Connection, repo_id: int) -> int:
    """How many tags the repository has."""
    return int(conn.execute(select(func.count()).where(tags.c.repository_id == repo_id)).scalar_one())


def manifest_with_content(conn: Connection, repo_id: int, digest: str) -> TaggedRow | None:
    """One manifest of the repository by digest (the tag fields empty)."""
    stmt = select(
        manifests.c.created_at,
        manifests.c.digest,
        manifests.c.media_type,
        manifests.c.artifact_type,
        manifests.c.content,
    ).where(manifests.c.repository_id == repo_id, manifests.c.digest == digest)
    row = conn.execute(stmt).first()
    return _tagged("", tuple(row)) if row is not None else None


def tags_of(conn: Connection, repo_id: int, digest: str, limit: int) -> list[str]:
    """Names of (at most `limit`) tags pointing at the manifest."""
    stmt = (
        select(tags.c.name)
        .join(manifests, manifests.c.id == tags.c.manifest_id)
        .where(tags.c.repository_id == repo_id, manifests.c.digest == digest)
        .order_by(tags.c.name)
        .limit(limit)
    )
    return list(conn.execute(stmt).scalars())


def referrer_counts(conn: Connection, repo_id: int, subjects: Collection[str]) -> dict[str, dict[str, int]]:
    """For each subject digest, how many referrers of each artifact type ("" when none) it has."""
    counts: dict[str, dict[str, int]] = {}
    for batch in batches(sorted(subjects)):
        stmt = (
            select(manifests.c.subject, manifests.c.artifact_type, func.count())
            .where(manifests.c.repository_id == repo_id, manifests.c.subject.in_(batch))
            .group_by(manifests.c.subject, manifests.c.artifact_type)
        )
        for row in conn.execute(stmt):
            counts.setdefault(str(row[0]), {})[str(row[1] or "")] = int(row[2])
    return counts


def manifests_by_digests(conn: Connection, repo_id: int, digests: Collection[str]) -> dict[str, bytes]:
    """The bytes of the repository's manifests among `digests` (an index's children), by digest."""
    found: dict[str, bytes] = {}
    for batch in batches(sorted(digests)):
        stmt = select(manifests.c.digest, manifests.c.content).where(
            manifests.c.repository_id == repo_id, manifests.c.digest.in_(batch)
        )
        found.update((str(row[0]), bytes(row[1])) for row in conn.execute(stmt))
    return found


def repository_readme(conn: Connection, repo_id: int) -> str:
    """The repository's README (Markdown source)."""
    value = conn.execute(select(repositories.c.readme).where(repositories.c.id == repo_id)).scalar()
    return str(value or "")


def set_repository_readme(conn: Connection, repo_id: int, readme: str) -> None:
    """Replace the repository's README."""
    conn.execute(update(repositories).where(repositories.c.id == repo_id).values(readme=readme))


def repository_events(conn: Connection, name: str, limit: int, before_id: int | None) -> list[AuditRow]:
    """Events about one repository (the repository, `name:tag` or `name@digest`), newest first."""
    stmt = select(audit_events).where(about_repository(name)).order_by(audit_events.c.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(audit_events.c.id < before_id)
    return [AuditRow(**row) for row in conn.execute(stmt).mappings()]


def job_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """How many background jobs there are of each (kind, state)."""
    stmt = select(jobs.c.kind, jobs.c.state, func.count()).group_by(jobs.c.kind, jobs.c.state)
    return {(str(row[0]), str(row[1])): int(row[2]) for row in conn.execute(stmt)}


def repository_sizes(conn: Connection, names: Collection[str]) -> dict[str, int]:
    """Bytes of the blobs each repository may serve (a blob shared by two repositories counts in both)."""
    found: dict[str, int] = {}
    for batch in batches(sorted(names)):
        stmt = (
            select(repositories.c.name, func.sum(blobs.c.size))
            .join(repository_blobs, repository_blobs.c.repository_id == repositories.c.id)
            .join(blobs, blobs.c.digest == repository_blobs.c.digest)
            .where(repositories.c.name.in_(batch))
            .group_by(repositories.c.name)
        )
        found.update((str(row[0]), int(row[1] or 0)) for row in conn.execute(stmt))
    return found
