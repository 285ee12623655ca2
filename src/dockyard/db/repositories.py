"""Queries for repository rows as access control and the repository service see them. Each takes an open
transaction; the rules live in dockyard.content.repositories."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from dockyard.db.batches import batches
from dockyard.db.schema import repositories


@dataclass(frozen=True)
class RepositoryRow:
    """A repository as access control sees it."""

    id: int
    name: str
    visibility: str
    description: str
    created_at: float
    scan_on_push: bool


# The columns of a RepositoryRow, in its order.
_ROW = select(
    repositories.c.id,
    repositories.c.name,
    repositories.c.visibility,
    repositories.c.description,
    repositories.c.created_at,
    repositories.c.scan_on_push,
)


def repository_by_name(conn: Connection, name: str) -> RepositoryRow | None:
    """A repository's access-control row."""
    row = conn.execute(_ROW.where(repositories.c.name == name)).mappings().first()
    return RepositoryRow(**row) if row is not None else None


def repositories_by_names(conn: Connection, names: list[str]) -> dict[str, RepositoryRow]:
    """Rows for the given names that exist."""
    found: dict[str, RepositoryRow] = {}
    for batch in batches(names):
        rows = conn.execute(_ROW.where(repositories.c.name.in_(batch))).mappings()
        found.update((row["name"], RepositoryRow(**row)) for row in rows)
    return found


def all_repository_names(conn: Connection, namespace: str | None = None) -> list[str]:
    """Repository names in order, optionally only those of one namespace."""
    stmt = select(repositories.c.name).order_by(repositories.c.name)
    if namespace is not None:
        stmt = stmt.where(repositories.c.name.like(namespace.replace("_", r"\_") + "/%", escape="\\"))
    return list(conn.execute(stmt).scalars())


def insert_repository(
    conn: Connection, name: str, visibility: str, description: str = "", scan_on_push: bool = True
) -> int:
    """Create a repository row; returns its id."""
    values = {
        "name": name,
        "visibility": visibility,
        "description": description,
        "scan_on_push": scan_on_push,
        "created_at": time.time(),
    }
    return int(conn.execute(insert(repositories).values(**values).returning(repositories.c.id)).scalar_one())


def update_repository(conn: Connection, repo_id: int, **values: Any) -> None:
    """Change a repository's visibility, description or scan-on-push setting."""
    conn.execute(update(repositories).where(repositories.c.id == repo_id).values(**values))


def delete_repository(conn: Connection, repo_id: int) -> None:
    """Remove a repository; its tags, manifests, links, uploads and grants go by cascade."""
    conn.execute(delete(repositories).where(repositories.c.id == repo_id))
