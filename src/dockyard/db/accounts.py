"""Queries for accounts, organizations, teams, grants, access and refresh tokens, sessions and login failures
(repository rows: dockyard.db.repositories).

Each takes an open transaction. The rules live in dockyard.auth; this module only reads and writes rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.schema import Table

from dockyard.db.batches import batches
from dockyard.db.schema import (
    access_tokens,
    accounts,
    login_failures,
    namespace_grants,
    organization_owners,
    refresh_tokens,
    repositories,
    repository_grants,
    sessions,
    team_members,
    teams,
)

USER = "user"
ORG = "org"


@dataclass(frozen=True)
class AccountRow:
    """A user or an organization."""

    id: int
    name: str
    kind: str
    full_name: str
    password_hash: str | None
    is_admin: bool
    is_active: bool
    created_at: float
    last_login_at: float | None = None


@dataclass(frozen=True)
class TeamRow:
    """A team of an organization."""

    id: int
    org_id: int
    name: str
    description: str
    created_at: float


@dataclass(frozen=True)
class TokenRow:
    """A personal access token, refresh token or session (only the hash of its secret)."""

    id: int
    public_id: str
    user_id: int
    secret_hash: str
    name: str
    read_only: bool
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None
    access_token_id: int | None = None
    csrf_token: str = ""


def _insert_returning_id(conn: Connection, table: Table, **values: Any) -> int:
    """Insert one row and return its generated primary key."""
    result = conn.execute(insert(table).values(**values))
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def _account(row: RowMapping | None) -> AccountRow | None:
    return AccountRow(**row) if row is not None else None


# Accounts


def insert_account(
    conn: Connection,
    name: str,
    kind: str,
    *,
    password_hash: str | None = None,
    is_admin: bool = False,
    full_name: str = "",
) -> int:
    """Create a user or organization; returns its id."""
    return _insert_returning_id(
        conn,
        accounts,
        name=name,
        kind=kind,
        password_hash=password_hash,
        is_admin=is_admin,
        full_name=full_name,
        is_active=True,
        created_at=time.time(),
    )


def account_by_name(conn: Connection, name: str) -> AccountRow | None:
    """The account with this name."""
    return _account(conn.execute(select(accounts).where(accounts.c.name == name)).mappings().first())


def accounts_by_names(conn: Connection, names: list[str]) -> dict[str, AccountRow]:
    """The accounts with these names that exist, by name."""
    found: dict[str, AccountRow] = {}
    for batch in batches(names):
        rows = conn.execute(select(accounts).where(accounts.c.name.in_(batch))).mappings()
        found.update((row["name"], AccountRow(**row)) for row in rows)
    return found


def account_by_id(conn: Connection, account_id: int) -> AccountRow | None:
    """The account with this id."""
    return _account(conn.execute(select(accounts).where(accounts.c.id == account_id)).mappings().first())


def _paged(stmt: Select[Any], key: Any, after: str | None, limit: int | None) -> Select[Any]:
    """The statement ordered by `key`, from after `after`, at most `limit` rows (None: all)."""
    stmt = stmt.order_by(key)
    if after is not None:
        stmt = stmt.where(key > after)
    return stmt if limit is None else stmt.limit(limit)


def list_accounts(
    conn: Connection, kind: str | None = None, after: str | None = None, limit: int | None = None
) -> list[AccountRow]:
    """Accounts by name, optionally of one kind, after `after`, at most `limit`."""
    stmt = select(accounts)
    if kind is not None:
        stmt = stmt.where(accounts.c.kind == kind)
    return [AccountRow(**row) for row in conn.execute(_paged(stmt, accounts.c.name, after, limit)).mappings()]


def update_account(conn: Connection, account_id: int, **values: Any) -> None:
    """Change columns of an account."""
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))


def delete_account(conn: Connection, account_id: int) -> None:
    """Remove an account and, by cascade, its memberships, grants and tokens."""
    conn.execute(delete(accounts).where(accounts.c.id == account_id))


def count_admins(conn: Connection) -> int:
    """How many active system administrators exist."""
    stmt = select(func.count()).where(
        accounts.c.kind == USER, accounts.c.is_admin.is_(True), accounts.c.is_active.is_(True)
    )
    return int(conn.execute(stmt).scalar_one())


# Organizations and teams


def add_owner(conn: Connection, org_id: int, user_id: int) -> None:
    """Make a user an owner of an organization (idempotent)."""
    if not is_owner(conn, org_id, user_id):
        conn.execute(insert(organization_owners).values(org_id=org_id, user_id=user_id))


def remove_owner(conn: Connection, org_id: int, user_id: int) -> bool:
    """Remove an owner; False when they were not one."""
    stmt = delete(organization_owners).where(
        organization_owners.c.org_id == org_id, organization_owners.c.user_id == user_id
    )
    return conn.execute(stmt).rowcount > 0


def is_owner(conn: Connection, org_id: int, user_id: int) -> bool:
    """Whether the user owns the organization."""
    stmt = select(organization_owners.c.user_id).where(
        organization_owners.c.org_id == org_id, organization_owners.c.user_id == user_id
    )
    return conn.execute(stmt).first() is not None


def owned_among(conn: Connection, user_id: int, org_ids: list[int]) -> set[int]:
    """Which of these organizations the user owns."""
    owned: set[int] = set()
    for batch in batches(org_ids):
        stmt = select(organization_owners.c.org_id).where(
            organization_owners.c.user_id == user_id, organization_owners.c.org_id.in_(batch)
        )
        owned.update(conn.execute(stmt).scalars())
    return owned


def owners(conn: Connection, org_id: int) -> list[str]:
    """Names of the organization's owners."""
    stmt = (
        select(accounts.c.name)
        .join(organization_owners, organization_owners.c.user_id == accounts.c.id)
        .where(organization_owners.c.org_id == org_id)
        .order_by(accounts.c.name)
    )
    return list(conn.execute(stmt).scalars())


def organizations_of(conn: Connection, user_id: int) -> list[str]:
    """Organizations the user owns or belongs to through a team."""
    owned = select(organization_owners.c.org_id).where(organization_owners.c.user_id == user_id)
    member = (
        select(teams.c.org_id)
        .join(team_members, team_members.c.team_id == teams.c.id)
        .where(team_members.c.user_id == user_id)
    )
    stmt = (
        select(accounts.c.name)
        .where(or_(accounts.c.id.in_(owned), accounts.c.id.in_(member)))
        .order_by(accounts.c.name)
    )
    return list(conn.execute(stmt).scalars())


def insert_team(conn: Connection, org_id: int, name: str, description: str) -> int:
    """Create a team; returns its id."""
    return _insert_returning_id(
        conn, teams, org_id=org_id, name=name, description=description, created_at=time.time()
    )


def team_by_name(conn: Connection, org_id: int, name: str) -> TeamRow | None:
    """A team of the organization, by name."""
    row = conn.execute(select(teams).where(teams.c.org_id == org_id, teams.c.name == name)).mappings().first()
    return TeamRow(**row) if row is not None else None


def list_teams(
    conn: Connection, org_id: int, after: str | None = None, limit: int | None = None
) -> list[TeamRow]:
    """The organization's teams by name, after `after`, at most `limit`."""
    stmt = _paged(select(teams).where(teams.c.org_id == org_id), teams.c.name, after, limit)
    return [TeamRow(**row) for row in conn.execute(stmt).mappings()]


def delete_team(conn: Connection, team_id: int) -> None:
    """Remove a team with its members and grants."""
    conn.execute(delete(teams).where(teams.c.id == team_id))


def add_member(conn: Connection, team_id: int, user_id: int) -> None:
    """Add a user to a team (idempotent)."""
    stmt = select(team_members.c.user_id).where(
        team_members.c.team_id == team_id, team_members.c.user_id == user_id
    )
    if conn.execute(stmt).first() is None:
        conn.execute(insert(team_members).values(team_id=team_id, user_id=user_id))


def remove_member(conn: Connection, team_id: int, user_id: int) -> bool:
    """Remove a user from a team; False when they were not a member."""
    stmt = delete(team_members).where(team_members.c.team_id == team_id, team_members.c.user_id == user_id)
    return conn.execute(stmt).rowcount > 0


def members(conn: Connection, team_id: int, after: str | None = None, limit: int | None = None) -> list[str]:
    """Names of the team's members, after `after`, at most `limit`."""
    stmt = (
        select(accounts.c.name)
        .join(team_members, team_members.c.user_id == accounts.c.id)
        .where(team_members.c.team_id == team_id)
    )
    return list(conn.execute(_paged(stmt, accounts.c.name, after, limit)).scalars())


# Grants


def set_repository_grant(conn: Connection, team_id: int, repo_id: int, level: str) -> None:
    """Grant (or change) a team's level on a repository."""
    delete_repository_grant(conn, team_id, repo_id)
    conn.execute(insert(repository_grants).values(team_id=team_id, repository_id=repo_id, level=level))


def delete_repository_grant(conn: Connection, team_id: int, repo_id: int) -> bool:
    """Withdraw a team's grant on a repository."""
    stmt = delete(repository_grants).where(
        repository_grants.c.team_id == team_id, repository_grants.c.repository_id == repo_id
    )
    return conn.execute(stmt).rowcount > 0


def repository_grants_of(
    conn: Connection, repo_id: int, after: str | None = None, limit: int | None = None
) -> list[tuple[str, str]]:
    """(team name, level) for every team granted on the repository, after `after`, at most `limit`."""
    stmt = (
        select(teams.c.name, repository_grants.c.level)
        .join(repository_grants, repository_grants.c.team_id == teams.c.id)
        .where(repository_grants.c.repository_id == repo_id)
    )
    return [(row[0], row[1]) for row in conn.execute(_paged(stmt, teams.c.name, after, limit))]


def team_repository_grants(
    conn: Connection, team_id: int, after: str | None = None, limit: int | None = None
) -> list[tuple[str, str]]:
    """(repository name, level) for every repository the team is granted on, after `after`, at most
    `limit`."""
    stmt = (
        select(repositories.c.name, repository_grants.c.level)
        .join(repository_grants, repository_grants.c.repository_id == repositories.c.id)
        .where(repository_grants.c.team_id == team_id)
    )
    return [(row[0], row[1]) for row in conn.execute(_paged(stmt, repositories.c.name, after, limit))]


def set_namespace_grant(conn: Connection, team_id: int, level: str | None) -> None:
    """Grant a team a level on every repository of its organization, or withdraw it (None)."""
    conn.execute(delete(namespace_grants).where(namespace_grants.c.team_id == team_id))
    if level is not None:
        conn.execute(insert(namespace_grants).values(team_id=team_id, level=level))


def namespace_grant(conn: Connection, team_id: int) -> str | None:
    """The team's level on its whole organization, if any."""
    stmt = select(namespace_grants.c.level).where(namespace_grants.c.team_id == team_id)
    return conn.execute(stmt).scalar_one_or_none()


def user_team_levels(conn: Connection, user_id: int, org_id: int | None, repo_id: int | None) -> list[str]:
    """Levels granted to the user's teams: on the repository, and on the organization's namespace."""
    mine = select(team_members.c.team_id).where(team_members.c.user_id == user_id)
    levels: list[str] = []
    if repo_id is not None:
        stmt = select(repository_grants.c.level).where(
            repository_grants.c.repository_id == repo_id, repository_grants.c.team_id.in_(mine)
        )
        levels += conn.execute(stmt).scalars()
    if org_id is not None:
        stmt = (
            select(namespace_grants.c.level)
            .join(teams, teams.c.id == namespace_grants.c.team_id)
            .where(teams.c.org_id == org_id, namespace_grants.c.team_id.in_(mine))
        )
        levels += conn.execute(stmt).scalars()
    return levels


def user_team_levels_many(
    conn: Connection, user_id: int, org_ids: list[int], repo_ids: list[int]
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """`user_team_levels` for many at once: levels per repository id, and per organization id."""
    mine = select(team_members.c.team_id).where(team_members.c.user_id == user_id)
    by_repo: dict[int, list[str]] = {}
    by_org: dict[int, list[str]] = {}
    for batch in batches(repo_ids):
        stmt = select(repository_grants.c.repository_id, repository_grants.c.level).where(
            repository_grants.c.repository_id.in_(batch), repository_grants.c.team_id.in_(mine)
        )
        for row in conn.execute(stmt).mappings():
            by_repo.setdefault(row["repository_id"], []).append(row["level"])
    for batch in batches(org_ids):
        stmt = (
            select(teams.c.org_id, namespace_grants.c.level)
            .join(teams, teams.c.id == namespace_grants.c.team_id)
            .where(teams.c.org_id.in_(batch), namespace_grants.c.team_id.in_(mine))
        )
        for row in conn.execute(stmt).mappings():
            by_org.setdefault(row["org_id"], []).append(row["level"])
    return by_repo, by_org


# Access tokens, refresh tokens and sessions


def insert_access_token(
    conn: Connection,
    user_id: int,
    public_id: str,
    secret_hash: str,
    name: str,
    read_only: bool,
    expires_at: float | None,
) -> int:
    """Store a new personal access token; returns its id."""
    return _insert_returning_id(
        conn,
        access_tokens,
        user_id=user_id,
        public_id=public_id,
        secret_hash=secret_hash,
        name=name,
        read_only=read_only,
        created_at=time.time(),
        expires_at=expires_at,
    )


def _access_token(row: RowMapping | None) -> TokenRow | None:
    return TokenRow(**row) if row is not None else None


def access_token_by_public_id(conn: Connection, public_id: str) -> TokenRow | None:
    """A personal access token by its public part."""
    stmt = select(access_tokens).where(access_tokens.c.public_id == public_id)
    return _access_token(conn.execute(stmt).mappings().first())


def access_token_by_id(conn: Connection, token_id: int) -> TokenRow | None:
    """A personal access token by id."""
    return _access_token(
        conn.execute(select(access_tokens).where(access_tokens.c.id == token_id)).mappings().first()
    )


def access_tokens_of(
    conn: Connection, user_id: int, before_id: int | None = None, limit: int | None = None
) -> list[TokenRow]:
    """A user's personal access tokens, newest first, older than `before_id`, at most `limit`."""
    stmt = select(access_tokens).where(access_tokens.c.user_id == user_id).order_by(access_tokens.c.id.desc())
    if before_id is not None:
        stmt = stmt.where(access_tokens.c.id < before_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [TokenRow(**row) for row in conn.execute(stmt).mappings()]


def revoke_access_token(conn: Connection, token_id: int) -> None:
    """Mark a personal access token revoked, and every refresh token obtained with it."""
    now = time.time()
    conn.execute(
        update(access_tokens)
        .where(access_tokens.c.id == token_id, access_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.access_token_id == token_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def touch_access_token(conn: Connection, token_id: int, when: float) -> None:
    """Record that a personal access token was used."""
    conn.execute(update(access_tokens).where(access_tokens.c.id == token_id).values(last_used_at=when))


def insert_refresh_token(
    conn: Connection,
    user_id: int,
    public_id: str,
    secret_hash: str,
    client_id: str,
    access_token_id: int | None,
    expires_at: float,
) -> int:
    """Store a new refresh token; returns its id."""
    return _insert_returning_id(
        conn,
        refresh_tokens,
        user_id=user_id,
        public_id=public_id,
        secret_hash=secret_hash,
        client_id=client_id,
        access_token_id=access_token_id,
        created_at=time.time(),
        expires_at=expires_at,
    )


# The columns refresh tokens and sessions share with access tokens (which map onto TokenRow whole).
_TOKEN_COLUMNS = ("id", "public_id", "user_id", "secret_hash", "created_at", "expires_at", "access_token_id")


def _credential_row(row: RowMapping, **fields: Any) -> TokenRow:
    """A refresh token's or a session's row as a TokenRow: never read-only, `fields` for the rest."""
    return TokenRow(**{column: row[column] for column in _TOKEN_COLUMNS}, read_only=False, **fields)


def refresh_token_by_public_id(conn: Connection, public_id: str) -> TokenRow | None:
    """A refresh token by its public part."""
    row = (
        conn.execute(select(refresh_tokens).where(refresh_tokens.c.public_id == public_id)).mappings().first()
    )
    if row is None:
        return None
    return _credential_row(
        row, name=row["client_id"], last_used_at=row["last_used_at"], revoked_at=row["revoked_at"]
    )


def touch_refresh_token(conn: Connection, token_id: int, when: float) -> None:
    """Record that a refresh token was used."""
    conn.execute(update(refresh_tokens).where(refresh_tokens.c.id == token_id).values(last_used_at=when))


def revoke_refresh_tokens(conn: Connection, user_id: int, token_id: int | None = None) -> int:
    """Revoke one of a user's refresh tokens, or all of them."""
    stmt = update(refresh_tokens).where(
        refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None)
    )
    if token_id is not None:
        stmt = stmt.where(refresh_tokens.c.id == token_id)
    return conn.execute(stmt.values(revoked_at=time.time())).rowcount


def insert_session(
    conn: Connection,
    user_id: int,
    public_id: str,
    secret_hash: str,
    csrf_token: str,
    expires_at: float,
    access_token_id: int | None = None,
) -> None:
    """Store a new browser session (signed in with an access token when `access_token_id` is given)."""
    conn.execute(
        insert(sessions).values(
            user_id=user_id,
            access_token_id=access_token_id,
            public_id=public_id,
            secret_hash=secret_hash,
            csrf_token=csrf_token,
            created_at=time.time(),
            expires_at=expires_at,
        )
    )


def session_by_public_id(conn: Connection, public_id: str) -> TokenRow | None:
    """A session by its public part."""
    row = conn.execute(select(sessions).where(sessions.c.public_id == public_id)).mappings().first()
    if row is None:
        return None
    csrf_token = row["csrf_token"]
    return _credential_row(row, name="session", last_used_at=None, revoked_at=None, csrf_token=csrf_token)


def delete_session(conn: Connection, session_id: int) -> None:
    """End a session."""
    conn.execute(delete(sessions).where(sessions.c.id == session_id))


def delete_user_sessions(conn: Connection, user_id: int) -> None:
    """End every browser session of a user."""
    conn.execute(delete(sessions).where(sessions.c.user_id == user_id))


def delete_expired_sessions(conn: Connection, now: float) -> None:
    """Forget sessions past their expiry."""
    conn.execute(delete(sessions).where(sessions.c.expires_at < now))


# Login failures


@dataclass(frozen=True)
class FailureRow:
    """Login attempts counted against one throttling key."""

    failures: int = 0
    last_failure_at: float = 0.0
    blocked_until: float = 0.0


def lock_login_failures(conn: Connection, keys: list[str]) -> dict[str, FailureRow]:
    """The rows of the keys, created empty when missing and locked until the transaction ends.

    Rows are created and locked in key order, so two logins never wait on each other crosswise. SQLite
    needs no row lock: its write transactions (BEGIN IMMEDIATE) already run one at a time.
    """
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    for key in sorted(keys):
        empty = dialect.insert(login_failures).values(
            key=key, failures=0, last_failure_at=0.0, blocked_until=0.0
        )
        conn.execute(empty.on_conflict_do_nothing(index_elements=["key"]))
    stmt = select(login_failures).where(login_failures.c.key.in_(keys)).order_by(login_failures.c.key)
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    return {
        row.key: FailureRow(int(row.failures), float(row.last_failure_at), float(row.blocked_until))
        for row in conn.execute(stmt)
    }


def save_login_failures(conn: Connection, key: str, row: FailureRow) -> None:
    """Write the count of a key locked by `lock_login_failures`; a count of zero deletes the row."""
    if row.failures <= 0:
        conn.execute(delete(login_failures).where(login_failures.c.key == key))
        return
    conn.execute(
        update(login_failures)
        .where(login_failures.c.key == key)
        .values(failures=row.failures, last_failure_at=row.last_failure_at, blocked_until=row.blocked_until)
    )


def prune_login_failures(conn: Connection, before: float) -> int:
    """Forget keys whose last failure is older than `before`; returns how many went."""
    result = conn.execute(delete(login_failures).where(login_failures.c.last_failure_at < before))
    return int(result.rowcount or 0)


def set_last_login(conn: Connection, account_id: int, when: float) -> None:
    """Remember an audited sign-in of the account."""
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(last_login_at=when))


@dataclass(frozen=True)
class LoginState:
    """Everything a password login settled without argon2 reads, from one query."""

    account: AccountRow | None
    pair: FailureRow
    account_failures: FailureRow


def login_state(conn: Connection, name: str, pair_key: str, account_key: str) -> LoginState:
    """The account called `name` and the counts of its two throttling keys: one round trip."""

    def column(key: str, col: Any) -> Any:
        return select(col).where(login_failures.c.key == key).scalar_subquery()

    c = login_failures.c
    # A one-row table outer-joined to the account, so the counts come back for unknown names too.
    one = select(literal(1).label("one")).subquery()
    stmt = select(
        column(pair_key, c.failures).label("pair_failures"),
        column(pair_key, c.blocked_until).label("pair_blocked"),
        column(account_key, c.failures).label("account_failures"),
        column(account_key, c.blocked_until).label("account_blocked"),
        *accounts.c,
    ).select_from(one.outerjoin(accounts, accounts.c.name == name))
    row = conn.execute(stmt).mappings().one()
    account = None
    if row["id"] is not None:
        account = AccountRow(**{column.name: row[column.name] for column in accounts.c})
    return LoginState(
        account=account,
        pair=FailureRow(int(row["pair_failures"] or 0), 0.0, float(row["pair_blocked"] or 0.0)),
        account_failures=FailureRow(
            int(row["account_failures"] or 0), 0.0, float(row["account_blocked"] or 0.0)
        ),
    )
