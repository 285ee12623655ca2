"""Queries for content caches and the choice of cache per user, organization and team.

Each takes an open transaction, but for `serving_for_user` (the pull path), which takes the Database and runs
one statement outside one. The rules live in dockyard.cache; this module only reads and writes rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, delete, insert, literal, select, union_all, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.schema import Table
from sqlalchemy.sql.selectable import Subquery

from dockyard.db.engine import Database
from dockyard.db.schema import account_caches, caches, organization_owners, team_caches, team_members, teams


@dataclass(frozen=True)
class CacheRow:
    """A registered cache and what its last health check found."""

    id: int
    name: str
    url: str
    ca_pem: str | None
    created_at: float
    healthy: bool
    checked_at: float | None
    last_error: str
    stats: str


def _row(mapping: object) -> CacheRow:
    return CacheRow(**{column.name: getattr(mapping, column.name) for column in caches.columns})


def all_caches(conn: Connection) -> list[CacheRow]:
    """Every registered cache, by name."""
    return [_row(row) for row in conn.execute(select(caches).order_by(caches.c.name))]


def cache_by_name(conn: Connection, name: str) -> CacheRow | None:
    """One cache by name."""
    row = conn.execute(select(caches).where(caches.c.name == name)).first()
    return _row(row) if row is not None else None


def insert_cache(conn: Connection, name: str, url: str, ca_pem: str | None, now: float) -> None:
    """Register a cache (not yet checked, so not yet used)."""
    conn.execute(insert(caches).values(name=name, url=url, ca_pem=ca_pem, created_at=now))


def delete_cache(conn: Connection, name: str) -> bool:
    """Forget a cache, and every choice of it; False when there was none."""
    return conn.execute(delete(caches).where(caches.c.name == name)).rowcount > 0


def save_check(
    conn: Connection, cache_id: int, healthy: bool, checked_at: float, error: str, stats: str | None
) -> None:
    """Record a health check's outcome (stats only when the cache answered)."""
    values: dict[str, object] = {"healthy": healthy, "checked_at": checked_at, "last_error": error}
    if stats is not None:
        values["stats"] = stats
    conn.execute(update(caches).where(caches.c.id == cache_id).values(**values))


def _choose(conn: Connection, table: Table, key: str, subject_id: int, cache_id: int | None) -> None:
    column = table.c[key]
    conn.execute(delete(table).where(column == subject_id))
    if cache_id is not None:
        conn.execute(insert(table).values({key: subject_id, "cache_id": cache_id}))


def choose_for_account(conn: Connection, account_id: int, cache_id: int | None) -> None:
    """A user's own cache, or an organization's default (None: no choice)."""
    _choose(conn, account_caches, "account_id", account_id, cache_id)


def choose_for_team(conn: Connection, team_id: int, cache_id: int | None) -> None:
    """A team's default cache (None: no choice)."""
    _choose(conn, team_caches, "team_id", team_id, cache_id)


def chosen_for_account(conn: Connection, account_id: int) -> CacheRow | None:
    """The cache an account chose itself (for a user's profile, an organization's settings)."""
    row = conn.execute(
        select(caches).join(account_caches, account_caches.c.cache_id == caches.c.id)
        .where(account_caches.c.account_id == account_id)
    ).first()  # fmt: skip
    return _row(row) if row is not None else None


@dataclass(frozen=True)
class ServingCache:
    """The cache a user's blob pulls go to."""

    name: str
    url: str


def _top_choice() -> Subquery:
    """The cache that serves user `:user_id`: their own choice, else a default of one of their teams, else
    of one of their organizations (member or owner); the lowest id wins among defaults of the same rank."""
    user_id: BindParameter[int] = bindparam("user_id")
    own = (
        select(account_caches.c.cache_id, literal(0).label("rank"))
        .where(account_caches.c.account_id == user_id)
    )  # fmt: skip
    team = (
        select(team_caches.c.cache_id, literal(1).label("rank"))
        .join(team_members, team_members.c.team_id == team_caches.c.team_id)
        .where(team_members.c.user_id == user_id)
    )
    org_of_team = (
        select(account_caches.c.cache_id, literal(2).label("rank"))
        .join(teams, teams.c.org_id == account_caches.c.account_id)
        .join(team_members, team_members.c.team_id == teams.c.id)
        .where(team_members.c.user_id == user_id)
    )
    org_owned = (
        select(account_caches.c.cache_id, literal(2).label("rank"))
        .join(organization_owners, organization_owners.c.org_id == account_caches.c.account_id)
        .where(organization_owners.c.user_id == user_id)
    )
    chosen = union_all(own, team, org_of_team, org_owned).subquery()
    return (
        select(caches.c.name, caches.c.url, caches.c.healthy, caches.c.checked_at)
        .join(chosen, chosen.c.cache_id == caches.c.id)
        .order_by(chosen.c.rank, caches.c.id)
        .limit(1)
        .subquery()
    )


# Built once: it runs on every blob GET by a signed-in user. Only the top choice counts: when it is not
# answering, the registry serves the blob itself rather than a cache the user did not choose.
_TOP = _top_choice()
_SERVING = select(_TOP.c.name, _TOP.c.url).where(
    _TOP.c.healthy, _TOP.c.checked_at > bindparam("checked_after")
)


def serving_for_user(db: Database, user_id: int, checked_after: float) -> ServingCache | None:
    """The cache that serves a user when its last health check, after `checked_after`, found it healthy;
    None otherwise. One statement outside a transaction (Database.quick_rows)."""
    rows = db.quick_rows(_SERVING, {"user_id": user_id, "checked_after": checked_after})
    return ServingCache(rows[0].name, rows[0].url) if rows else None
