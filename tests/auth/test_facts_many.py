"""The catalog's facts in bulk: the answers of one repository at a time, in a bounded number of queries."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from auth_support import PASSWORD, SYSTEM, World, open_world
from sqlalchemy import event

from dockyard.auth.identity import ANONYMOUS, Identity
from dockyard.db import repositories as q
from support.policy_oracle import browsable

NAMES = [
    "acme/private",
    "acme/public",
    "acme/granted-by-namespace",
    "acme/not-created",
    "alice/private",
    "alice/public",
    "gone/orphan",
    "toplevel",
    "nobody/not-created",
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The access-control world, plus a namespace-wide grant, an orphaned repository and a top-level one."""
    settings: dict[str, Any] = {}
    if request.param == "postgres":
        settings["database_url"] = request.getfixturevalue("postgres_server").create_database()
    world = open_world(tmp_path / "data", **settings)
    accounts = world.auth.accounts
    world.auth.repositories.create(SYSTEM, "acme/granted-by-namespace", "private")
    accounts.create_user(None, "nsreader", PASSWORD)
    world.auth.organizations.create_team(SYSTEM, "acme", "everything")
    world.auth.organizations.set_member(SYSTEM, "acme", "everything", "nsreader", True)
    world.auth.grants.set_namespace_grant(SYSTEM, "acme", "everything", "read-write")
    world.auth.repositories.create(SYSTEM, "gone/orphan", "public")  # no account holds the namespace
    world.auth.repositories.create(SYSTEM, "toplevel", "private")
    try:
        yield world
    finally:
        world.client.__exit__(None, None, None)


def _identities(world: World) -> list[Identity]:
    found = [ANONYMOUS]
    for name in ("outsider", "ro", "rw", "adm", "owner", "alice", "nsreader", "admin"):
        identity = world.auth.accounts.identity(world.auth.accounts.account(name).id)
        assert identity is not None
        found += [identity, Identity(identity.user_id, identity.name, identity.is_admin, read_only=True)]
    return found


def test_bulk_facts_equal_one_at_a_time(world: World) -> None:
    for identity in _identities(world):
        bulk = world.auth.permissions.facts_many(identity, NAMES)
        assert bulk == {name: world.auth.permissions.repo_facts(identity, name) for name in NAMES}, identity


def test_bulk_facts_cost_the_same_queries_for_many_names(world: World) -> None:
    accounts = world.auth.accounts
    for index in range(40):
        world.auth.repositories.create(SYSTEM, f"acme/many-{index:02d}", "private")
    identity = accounts.identity(accounts.account("ro").id)
    assert identity is not None
    statements: list[str] = []

    caller = threading.get_ident()

    def count(*args: Any) -> None:
        # Only this thread's statements: the app's background job runner shares the engine.
        if threading.get_ident() == caller:
            statements.append(str(args[2]))

    engine = accounts.db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        world.auth.permissions.facts_many(identity, NAMES[:2])
        few = len(statements)
        statements.clear()
        world.auth.permissions.facts_many(identity, NAMES + [f"acme/many-{index:02d}" for index in range(40)])
        many = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert many == few


def test_more_repositories_than_one_statement_may_bind(tmp_path: Path) -> None:
    """Every repository name is a bound parameter of an `IN (...)`; the database caps them per statement
    (PostgreSQL at 65,535). SQLite's cap is lowered here so that 1,200 repositories pass it."""
    world = open_world(tmp_path / "data")
    try:
        accounts = world.auth.accounts
        with accounts.db.write() as conn:
            for index in range(1200):
                q.insert_repository(conn, f"acme/bulk-{index:04d}", "public" if index % 2 else "private")
        engine = accounts.db.engine
        event.listen(engine, "connect", _cap_bound_parameters)
        engine.dispose()  # new connections, with the cap
        accounts.create_user(None, "nsreader", PASSWORD)
        world.auth.organizations.create_team(SYSTEM, "acme", "everything")
        world.auth.organizations.set_member(SYSTEM, "acme", "everything", "nsreader", True)
        world.auth.grants.set_namespace_grant(SYSTEM, "acme", "everything", "read-only")
        reader = accounts.identity(accounts.account("nsreader").id)
        assert reader is not None
        admin_view = browsable(world.auth.permissions, SYSTEM)
        reader_view = set(browsable(world.auth.permissions, reader))
        outsider = accounts.identity(accounts.account("outsider").id)
        assert outsider is not None
        outsider_view = set(browsable(world.auth.permissions, outsider))
    finally:
        world.client.__exit__(None, None, None)
    assert len(admin_view) >= 1200
    public = {f"acme/bulk-{index:04d}" for index in range(1, 1200, 2)}
    private = {f"acme/bulk-{index:04d}" for index in range(0, 1200, 2)}
    assert public <= outsider_view and not private & outsider_view
    assert public | private <= reader_view  # through the namespace-wide grant


def _cap_bound_parameters(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
