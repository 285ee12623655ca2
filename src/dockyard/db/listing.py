"""Queries behind browsing a registry: repositories by name or last push, a repository's tags and its untagged
manifests. Each reads a bounded window of rows through an index, then filters that window, so a request costs
the same however many rows its filters skip."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from dockyard.db.schema import manifest_references, manifests, repositories, tags

MANIFEST_REF = "manifest"


def _lexical(conn: Connection) -> Callable[[Any], Any]:
    # Byte order on both databases (SQLite's BINARY collation; "C" on PostgreSQL), as the catalog pages.
    return (lambda column: column) if conn.dialect.name == "sqlite" else (lambda column: column.collate("C"))


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# Repositories


@dataclass(frozen=True)
class RepositoryListing:
    """A repository as lists show it."""

    id: int
    name: str
    visibility: str
    description: str
    created_at: float
    scan_on_push: bool
    last_pushed_at: float  # 0 when never pushed


@dataclass(frozen=True)
class Window:
    """The rows of one window that passed the filters, and where the window ended (None: nothing after)."""

    rows: list[Any]
    last: tuple[float, str] | None


_REPOSITORY_COLUMNS = (
    repositories.c.id,
    repositories.c.name,
    repositories.c.visibility,
    repositories.c.description,
    repositories.c.created_at,
    repositories.c.scan_on_push,
    repositories.c.last_pushed_at,
)


def repository_window(
    conn: Connection,
    *,
    by_push: bool,
    after: tuple[float, str] | None,
    size: int,
    contains: str | None,
    namespace: str | None,
    visibility: str | None,
) -> Window:
    """The next `size` repositories in order (by name; or by last push, newest first, then name), filtered by
    name substring, namespace and visibility. `after` is where the previous window ended."""
    lexical = _lexical(conn)
    name = lexical(repositories.c.name)
    pushed = repositories.c.last_pushed_at
    window = select(repositories.c.id, repositories.c.name, pushed)
    if by_push:
        window = window.order_by(pushed.desc(), name.desc())
        if after is not None:
            at, last_name = after
            window = window.where(or_(pushed < at, and_(pushed == at, name < last_name)))
    else:
        window = window.order_by(name)
        if namespace is not None:
            # A range of the name index: the window walks only this namespace.
            window = window.where(name > f"{namespace}/", name < f"{namespace}0")
        if after is not None:
            window = window.where(name > after[1])
    scanned = window.limit(size).subquery()
    rows = list(conn.execute(select(scanned.c.name, scanned.c.last_pushed_at)))
    if not rows:
        return Window([], None)
    # The window's last row in its order: the oldest push (then lowest name), or the highest name.
    edge = min(rows, key=lambda r: (r.last_pushed_at, r.name)) if by_push else max(rows, key=lambda r: r.name)
    last = (float(edge.last_pushed_at), str(edge.name)) if len(rows) == size else None
    stmt = select(*_REPOSITORY_COLUMNS).join(scanned, scanned.c.id == repositories.c.id)
    if contains:
        stmt = stmt.where(repositories.c.name.like(f"%{_like_escaped(contains)}%", escape="\\"))
    if namespace is not None:
        stmt = stmt.where(repositories.c.name.like(f"{_like_escaped(namespace)}/%", escape="\\"))
    if visibility is not None:
        stmt = stmt.where(repositories.c.visibility == visibility)
    stmt = stmt.order_by(pushed.desc(), name.desc()) if by_push else stmt.order_by(name)
    return Window([RepositoryListing(**row) for row in conn.execute(stmt).mappings()], last)


def repository_listing(conn: Connection, name: str) -> RepositoryListing | None:
    """One repository as lists show it."""
    row = conn.execute(select(*_REPOSITORY_COLUMNS).where(repositories.c.name == name)).mappings().first()
    return RepositoryListing(**row) if row is not None else None


def record_push(conn: Connection, repo_id: int) -> None:
    """Remember that the repository was pushed to now (for sorting by last push)."""
    conn.execute(update(repositories).where(repositories.c.id == repo_id).values(last_pushed_at=time.time()))


# Tags and manifests


@dataclass(frozen=True)
class TagListing:
    """A tag and the manifest it points at."""

    name: str
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    pushed_at: float
    pushed_by: str | None


def tags_page(conn: Connection, repo_id: int, after: str | None, limit: int) -> list[TagListing]:
    """A repository's tags in byte order after `after`, at most `limit` (the primary key's order)."""
    tag = _lexical(conn)(tags.c.name)
    stmt = (
        select(
            tags.c.name,
            manifests.c.digest,
            manifests.c.media_type,
            manifests.c.size,
            manifests.c.artifact_type,
            tags.c.updated_at.label("pushed_at"),
            tags.c.pushed_by,
        )
        .join(manifests, manifests.c.id == tags.c.manifest_id)
        .where(tags.c.repository_id == repo_id, tag > (after or ""))
        .order_by(tag)
        .limit(limit)
    )
    return [TagListing(**row) for row in conn.execute(stmt).mappings()]


@dataclass(frozen=True)
class ManifestListing:
    """A manifest no tag points at."""

    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    created_at: float


def untagged_window(conn: Connection, repo_id: int, after: str | None, size: int) -> Window:
    """Among the next `size` manifests of the repository by digest: those no tag points at, no index of the
    repository lists, and that refer to no subject (a signature or SBOM belongs to its subject)."""
    scanned = (
        select(manifests.c.id, manifests.c.digest)
        .where(manifests.c.repository_id == repo_id, manifests.c.digest > (after or ""))
        .order_by(manifests.c.digest)
        .limit(size)
        .subquery()
    )
    count, last = conn.execute(select(func.count(), func.max(scanned.c.digest))).one()
    parent = aliased(manifests)
    in_index = (
        select(manifest_references.c.manifest_id)
        .join(parent, parent.c.id == manifest_references.c.manifest_id)
        .where(
            manifest_references.c.kind == MANIFEST_REF,
            manifest_references.c.digest == manifests.c.digest,
            parent.c.repository_id == repo_id,
        )
    )
    stmt = (
        select(
            manifests.c.digest,
            manifests.c.media_type,
            manifests.c.size,
            manifests.c.artifact_type,
            manifests.c.created_at,
        )
        .join(scanned, scanned.c.id == manifests.c.id)
        .where(
            manifests.c.subject.is_(None),
            ~exists(select(tags.c.name).where(tags.c.manifest_id == manifests.c.id)),
            ~exists(in_index),
        )
        .order_by(manifests.c.digest)
    )
    rows = [ManifestListing(**row) for row in conn.execute(stmt).mappings()]
    return Window(rows, (0.0, str(last)) if count == size else None)


def tags_of_manifest(conn: Connection, manifest_id: int, limit: int) -> list[str]:
    """Up to `limit` names of the tags pointing at the manifest."""
    stmt = select(tags.c.name).where(tags.c.manifest_id == manifest_id).order_by(tags.c.name).limit(limit)
    return list(conn.execute(stmt).scalars())
