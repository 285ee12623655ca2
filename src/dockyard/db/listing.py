"""Queries behind browsing a registry: repositories by name or last push, a repository's tags and its untagged
manifests. Each reads a bounded window of rows through an index, then filters that window, so a request costs
the same however many rows its filters skip."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, case, exists, false, func, or_, select, true, union_all, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from dockyard.auth.policy import BrowseScope
from dockyard.db.accounts import ORG, USER
from dockyard.db.schema import (
    accounts,
    manifest_references,
    manifests,
    namespace_grants,
    organization_owners,
    repositories,
    repository_grants,
    tags,
    team_members,
    teams,
)

MANIFEST_REF = "manifest"


def lexical(conn: Connection) -> Callable[[Any], Any]:
    """How to compare a column in byte order on this database (SQLite's BINARY collation; "C" on
    PostgreSQL), the order of every listing and its cursors."""
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


@dataclass(frozen=True)
class Filters:
    """What a repository list is narrowed to: a name substring, one namespace, one visibility."""

    contains: str | None = None
    namespace: str | None = None
    visibility: str | None = None


_REPOSITORY_COLUMNS = (
    repositories.c.id,
    repositories.c.name,
    repositories.c.visibility,
    repositories.c.description,
    repositories.c.created_at,
    repositories.c.scan_on_push,
    repositories.c.last_pushed_at,
)


def _namespace_of(conn: Connection, name: Any) -> Any:
    """The first component of a repository name, '' for a top-level name (no account is named '')."""
    if conn.dialect.name == "sqlite":
        # instr is 0 without a slash, and substr(name, 1, -1) is ''.
        return func.substr(name, 1, func.instr(name, "/") - 1)
    return case((func.strpos(name, "/") > 0, func.split_part(name, "/", 1)), else_="")


def _whole_namespaces(user: int) -> Select[Any]:
    """Names of the namespaces the user sees whole: the user's own, and the organizations the user owns or
    where a team of the user holds a namespace grant."""
    my_teams = select(team_members.c.team_id).where(team_members.c.user_id == user)
    owned = select(organization_owners.c.org_id).where(organization_owners.c.user_id == user)
    namespace_granted = (
        select(teams.c.org_id)
        .join(namespace_grants, namespace_grants.c.team_id == teams.c.id)
        .where(teams.c.id.in_(my_teams))
    )
    return select(accounts.c.name).where(
        or_(
            and_(accounts.c.id == user, accounts.c.kind == USER),
            and_(
                accounts.c.kind == ORG,
                or_(accounts.c.id.in_(owned), accounts.c.id.in_(namespace_granted)),
            ),
        )
    )


def _granted_ids(conn: Connection, user: int) -> Select[Any]:
    """Ids of the repositories a team of the user holds a grant on, in organization namespaces only (the
    policy's facts gather repository grants there alone)."""
    my_teams = select(team_members.c.team_id).where(team_members.c.user_id == user)
    granted_repo = aliased(repositories)
    organizations = select(accounts.c.name).where(accounts.c.kind == ORG)
    return (
        select(repository_grants.c.repository_id)
        .join(granted_repo, granted_repo.c.id == repository_grants.c.repository_id)
        .where(
            repository_grants.c.team_id.in_(my_teams),
            _namespace_of(conn, granted_repo.c.name).in_(organizations),
        )
    )


def visible_clause(conn: Connection, scope: BrowseScope) -> ColumnElement[bool]:
    """The repositories `scope` may browse, as a condition on `repositories`: the SQL of
    `dockyard.auth.policy.BrowseScope` (read its rule there). Its subqueries do not depend on the row, so
    the database evaluates each once per statement, never once per repository."""
    if scope.everything:
        return true()
    parts: list[ColumnElement[bool]] = []
    if scope.public:
        parts.append(repositories.c.visibility == "public")
    if scope.user_id is not None:
        parts.append(_namespace_of(conn, repositories.c.name).in_(_whole_namespaces(scope.user_id)))
        parts.append(repositories.c.id.in_(_granted_ids(conn, scope.user_id)))
    return or_(*parts) if parts else false()


def _conditions(conn: Connection, scope: BrowseScope, filters: Filters) -> list[ColumnElement[bool]]:
    name = lexical(conn)(repositories.c.name)
    found = [visible_clause(conn, scope)]
    if filters.namespace is not None:
        # A range of the name index: only this namespace's rows are read.
        found += [name > f"{filters.namespace}/", name < f"{filters.namespace}0"]
    if filters.visibility is not None:
        found.append(repositories.c.visibility == filters.visibility)
    if filters.contains:
        found.append(repositories.c.name.like(f"%{_like_escaped(filters.contains.lower())}%", escape="\\"))
    return found


def _ordered(conn: Connection, stmt: Select[Any], by_push: bool) -> Select[Any]:
    name = lexical(conn)(repositories.c.name)
    if by_push:
        return stmt.order_by(repositories.c.last_pushed_at.desc(), name)
    return stmt.order_by(name)


def _after(conn: Connection, by_push: bool, after: tuple[float, str]) -> ColumnElement[bool]:
    name = lexical(conn)(repositories.c.name)
    if by_push:
        at, last = after
        pushed = repositories.c.last_pushed_at
        return or_(pushed < at, and_(pushed == at, name > last))
    newer: ColumnElement[bool] = name > after[1]
    return newer


def repositories_page(
    conn: Connection,
    scope: BrowseScope,
    filters: Filters,
    *,
    by_push: bool,
    limit: int | None,
    offset: int = 0,
    after: tuple[float, str] | None = None,
) -> list[RepositoryListing]:
    """At most `limit` (None: all) repositories `scope` may browse that pass the filters, by name or by
    last push (newest first, then by name), after the keyset position `after` or `offset` rows:
    one statement."""
    stmt = select(*_REPOSITORY_COLUMNS).where(*_conditions(conn, scope, filters))
    if after is not None:
        stmt = stmt.where(_after(conn, by_push, after))
    stmt = _ordered(conn, stmt, by_push).offset(offset).limit(limit)
    return [RepositoryListing(**row) for row in conn.execute(stmt).mappings()]


def count_repositories(conn: Connection, scope: BrowseScope, filters: Filters, cap: int) -> int:
    """How many repositories `scope` may browse pass the filters, counting at most `cap` + 1 rows."""
    rows = select(repositories.c.id).where(*_conditions(conn, scope, filters)).limit(cap + 1).subquery()
    return int(conn.execute(select(func.count()).select_from(rows)).scalar_one())


def visible_namespaces(conn: Connection, scope: BrowseScope, cap: int) -> list[str]:
    """The first `cap` namespaces, by name, holding a repository `scope` may browse: `visible_clause` taken
    apart as `visible_by_name` takes it, so the public ones come from the visibility index alone."""
    namespace = _namespace_of(conn, repositories.c.name)
    parts: list[Select[Any]] = []
    if scope.everything:
        parts.append(select(namespace).distinct())
    if scope.public and not scope.everything:
        parts.append(select(namespace).where(repositories.c.visibility == "public").distinct())
    if scope.user_id is not None and not scope.everything:
        whole = _whole_namespaces(scope.user_id).subquery()
        name = lexical(conn)(repositories.c.name)
        held = select(repositories.c.id).where(name > whole.c.name + "/", name < whole.c.name + "0")
        parts.append(select(whole.c.name).where(held.exists()))
        granted = repositories.c.id.in_(_granted_ids(conn, scope.user_id))
        parts.append(select(namespace).where(granted).distinct())
    found: set[str] = set()
    for part in parts:
        found.update(map(str, conn.execute(part).scalars()))
    return sorted(found - {""})[:cap]


def visible_by_name(
    conn: Connection, scope: BrowseScope, filters: Filters, after: str | None, limit: int
) -> list[RepositoryListing]:
    """The first `limit` repositories `scope` may browse after `after` in byte order that pass the filters,
    read without examining any other: `visible_clause` taken apart into index ranges, each read up to
    `limit` rows (public repositories through the visibility index, each namespace the user sees whole
    through the name index) plus the repositories granted to the user's teams, merged here. The work is
    bounded by the page and by what the caller may see, however many hidden repositories lie between."""
    name = lexical(conn)(repositories.c.name)
    common: list[ColumnElement[bool]] = [name > (after or "")]
    if filters.namespace is not None:
        common += [name > f"{filters.namespace}/", name < f"{filters.namespace}0"]
    if filters.contains:
        common.append(repositories.c.name.like(f"%{_like_escaped(filters.contains.lower())}%", escape="\\"))
    if filters.visibility is not None:
        common.append(repositories.c.visibility == filters.visibility)
    if scope.everything:
        return _rows(conn, [select(*_REPOSITORY_COLUMNS).where(*common).order_by(name).limit(limit)], limit)
    branches: list[Select[Any]] = []
    if scope.public and filters.visibility in (None, "public"):
        public = repositories.c.visibility == "public"
        branches.append(select(*_REPOSITORY_COLUMNS).where(public, *common).order_by(name).limit(limit))
    if scope.user_id is not None and filters.visibility in (None, "private"):
        # Public rows come through the branch above already.
        others = [repositories.c.visibility != "public"] if scope.public else []
        whole = list(map(str, conn.execute(_whole_namespaces(scope.user_id)).scalars()))
        for namespace in whole:
            if filters.namespace in (None, namespace):
                inside = [name > f"{namespace}/", name < f"{namespace}0"]
                branches.append(
                    select(*_REPOSITORY_COLUMNS).where(*inside, *others, *common).order_by(name).limit(limit)
                )
        # Unordered: read through the grants (as many as the user's teams hold), never the name index.
        granted = repositories.c.id.in_(_granted_ids(conn, scope.user_id))
        branches.append(select(*_REPOSITORY_COLUMNS).where(granted, *others, *common))
    return _rows(conn, branches, limit)


# Compound statements stay well under SQLite's limit of 500 terms.
_BRANCHES_PER_STATEMENT = 100


def _rows(conn: Connection, branches: list[Select[Any]], limit: int) -> list[RepositoryListing]:
    found: dict[int, RepositoryListing] = {}
    for start in range(0, len(branches), _BRANCHES_PER_STATEMENT):
        chunk = branches[start : start + _BRANCHES_PER_STATEMENT]
        stmt = chunk[0] if len(chunk) == 1 else union_all(*(select(*b.subquery().c) for b in chunk))
        for row in conn.execute(stmt).mappings():
            found[row["id"]] = RepositoryListing(**row)
    return sorted(found.values(), key=lambda row: row.name)[:limit]


def visible_names(conn: Connection, scope: BrowseScope, after: str | None, limit: int) -> list[str]:
    """Names of the first `limit` repositories `scope` may browse after `after`, in byte order (the
    catalog's page), read as `visible_by_name` reads them."""
    return [row.name for row in visible_by_name(conn, scope, Filters(), after, limit)]


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
    """A tag and the manifest it points at (its bytes too, when asked for: the web UI reads kinds, sizes
    and platforms of indexes from them)."""

    name: str
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    pushed_at: float
    pushed_by: str | None
    # An image's `os/architecture[/variant]`, recorded at push (None: an index, an artifact, or older).
    platform: str | None
    content: bytes | None = None


def tags_page(
    conn: Connection, repo_id: int, after: str | None, limit: int, *, with_content: bool = False
) -> list[TagListing]:
    """A repository's tags in byte order after `after`, at most `limit` (keyset on the primary key: as
    fast on the last page as on the first), one statement; the API's and the web UI's tag pages."""
    tag = lexical(conn)(tags.c.name)
    columns = [
        tags.c.name,
        manifests.c.digest,
        manifests.c.media_type,
        manifests.c.size,
        manifests.c.artifact_type,
        tags.c.updated_at.label("pushed_at"),
        tags.c.pushed_by,
        manifests.c.platform,
    ]
    if with_content:
        columns.append(manifests.c.content)
    stmt = (
        select(*columns)
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
