"""The SQL of the browse rule answers as the policy function does, on SQLite and PostgreSQL.

`dockyard.auth.policy` decides access one repository at a time from facts; listings filter in the database
through `dockyard.db.listing` (`visible_clause`, and `visible_by_name`, which reads it as index ranges).
Over generated worlds of users, organizations, owners, teams, members, namespace and repository grants
(some a service would refuse, such as a grant in a user's namespace), visibilities and names that share
prefixes, every viewer's listing must be exactly the names the policy lets it browse. A change to the
rule on either side that the other does not follow fails here.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from dockyard.auth import policy as p
from dockyard.auth.identity import ANONYMOUS, Identity
from dockyard.auth.permissions import Permissions
from dockyard.config import Settings
from dockyard.content.names import namespace_of
from dockyard.db import accounts as aq
from dockyard.db import listing as q
from dockyard.db import repositories as rq
from dockyard.db.engine import Database
from support.policy_oracle import browsable

USERS = ["ann", "ann2", "bob", "cy"]
ORGS = ["o1", "o10", "o1-x", "acme"]
# Namespaces whose names share prefixes (o1, o10, o1-x; ann, ann2), one without an account, top level.
NAMESPACES = [*USERS, *ORGS, "ghost"]
LEAVES = ["app", "app-x", "app/deep"]
TOP_LEVEL = ["o1", "toplevel", "ann"]
LEVELS = ["read-only", "read-write", "admin"]


def _world(db: Database, seed: int) -> list[str]:
    """Accounts, teams, grants and repositories drawn from `seed`; returns every repository name."""
    rng = random.Random(seed)
    names = sorted({f"{ns}/{leaf}" for ns in NAMESPACES for leaf in LEAVES} | set(TOP_LEVEL))
    with db.write() as conn:
        users = {name: aq.insert_account(conn, name, aq.USER) for name in USERS}
        orgs = {name: aq.insert_account(conn, name, aq.ORG) for name in ORGS}
        teams: list[int] = []
        for org_id in orgs.values():
            for user_id in users.values():
                if rng.random() < 0.2:
                    aq.add_owner(conn, org_id, user_id)
            for index in range(2):
                team = aq.insert_team(conn, org_id, f"t{index}", "")
                teams.append(team)
                for user_id in users.values():
                    if rng.random() < 0.4:
                        aq.add_member(conn, team, user_id)
                if rng.random() < 0.3:
                    aq.set_namespace_grant(conn, team, rng.choice(LEVELS))
        repo_ids = {
            name: rq.insert_repository(conn, name, rng.choice(["public", "private"])) for name in names
        }
        for repo_id in repo_ids.values():
            # Any team, any namespace: also grants the policy ignores (a user's namespace, no account).
            for team in rng.sample(teams, 2):
                if rng.random() < 0.25:
                    aq.set_repository_grant(conn, team, repo_id, rng.choice(LEVELS))
    return names


def _viewers(db: Database) -> list[Identity]:
    with db.read() as conn:
        users = [aq.account_by_name(conn, name) for name in USERS]
    viewers = [ANONYMOUS, Identity(user_id=10_000, name="admin", is_admin=True)]
    for row in users:
        assert row is not None
        viewer = Identity(user_id=row.id, name=row.name)
        viewers += [viewer, replace(viewer, read_only=True)]
    return viewers


def _paged(db: Database, scope: p.BrowseScope, filters: q.Filters, size: int) -> list[str]:
    """Every name `visible_by_name` lists, page by page after the last name shown."""
    found: list[str] = []
    while True:
        with db.read() as conn:
            page = [
                row.name
                for row in q.visible_by_name(conn, scope, filters, found[-1] if found else None, size)
            ]
        found += page
        if len(page) < size:
            return found


@pytest.mark.parametrize("seed", [1, 2])
def test_the_sql_lists_exactly_what_the_policy_lets_each_viewer_browse(
    migrated_db: Database, tmp_path: Path, seed: int
) -> None:
    names = _world(migrated_db, seed)
    for anonymous_pull in (False, True):
        accounts = Permissions(migrated_db, Settings(data_dir=tmp_path, anonymous_pull=anonymous_pull))
        for viewer in _viewers(migrated_db):
            _compare(migrated_db, accounts, names, viewer)


def _compare(db: Database, accounts: Permissions, names: list[str], viewer: Identity) -> None:
    """Every way the listings read the rule, against the policy's answer per repository."""
    expected = browsable(accounts, viewer, names)
    scope = p.browse_scope(viewer, accounts.policy_settings)
    with db.read() as conn:
        everything = q.repositories_page(conn, scope, q.Filters(), by_push=False, limit=None)
        assert [row.name for row in everything] == expected, viewer
        assert q.count_repositories(conn, scope, q.Filters(), 1000) == len(expected)
        namespaces = sorted({ns for n in expected if (ns := namespace_of(n))})
        assert q.visible_namespaces(conn, scope, 1000) == namespaces
        assert q.visible_names(conn, scope, None, 1000) == expected
    assert _paged(db, scope, q.Filters(), 2) == expected, viewer
    for namespace in [*NAMESPACES, "nobody"]:
        filtered = q.Filters(namespace=namespace)
        inside = [n for n in expected if namespace_of(n) == namespace]
        assert _paged(db, scope, filtered, 3) == inside, (viewer, namespace)
        with db.read() as conn:
            rows = q.repositories_page(conn, scope, filtered, by_push=True, limit=None)
        assert sorted(row.name for row in rows) == inside
    for visibility in ("public", "private"):
        filtered = q.Filters(visibility=visibility)
        with db.read() as conn:
            kinds = {row.name: row.visibility for row in everything}
            rows = q.repositories_page(conn, scope, filtered, by_push=False, limit=None)
        wanted = [n for n in expected if kinds[n] == visibility]
        assert [row.name for row in rows] == wanted
        assert _paged(db, scope, filtered, 4) == wanted


def test_single_repository_facts_agree_with_the_batch(migrated_db: Database, tmp_path: Path) -> None:
    """The matrix reads facts in a batch; `require` reads them one repository at a time: same answers."""
    names = _world(migrated_db, 7)
    accounts = Permissions(migrated_db, Settings(data_dir=tmp_path))
    for viewer in _viewers(migrated_db):
        batch = accounts.facts_many(viewer, names)
        assert all(accounts.repo_facts(viewer, n) == batch[n] for n in names), viewer
