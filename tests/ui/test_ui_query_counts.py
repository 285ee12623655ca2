"""Pages stay fast as data grows: the tags page and the repository list cost the same number of queries
whatever the number of rows they show (no query per row)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from auth_support import ADMIN_PASSWORD, PASSWORD, AppFactory, World
from pages_support import SYSTEM, push_image
from sqlalchemy import event

from dockyard.auth.identity import ANONYMOUS
from support.policy_oracle import browsable


@contextmanager
def counted(world: World, any_thread: bool = False) -> Iterator[list[str]]:
    """Every query this thread runs meanwhile (the app's background workers run theirs in other threads),
    or with `any_thread` every one the app runs (the API and /v2/ answer from worker threads)."""
    engine = world.client.app.state.services.db.engine
    statements: list[str] = []
    me = threading.get_ident()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # Queries only: a new pooled connection's set-up (PRAGMAs) is not the page's cost.
        mine = any_thread or threading.get_ident() == me
        if mine and statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _tags_page_cost(world: World, repo: str) -> int:
    browser = world.client.app.state.services.browser
    with counted(world) as statements:
        page = browser.tags(SYSTEM, repo, limit=50)
    assert page.tags
    return len(statements)


def test_the_tags_page_costs_the_same_for_two_tags_and_for_forty(world: World) -> None:
    auth = ("admin", ADMIN_PASSWORD)
    for index in range(2):
        push_image(world.client, "acme/public", f"t{index}", auth)
    for index in range(40):
        push_image(world.client, "acme/private", f"t{index:02d}", auth)
    assert _tags_page_cost(world, "acme/public") == _tags_page_cost(world, "acme/private")


def test_the_repository_list_costs_the_same_for_few_and_many_repositories(world: World) -> None:
    services = world.client.app.state.services
    outsider = services.auth.accounts.identity(services.auth.accounts.user("outsider").id)

    def cost() -> int:
        with counted(world) as statements:
            services.browser.repositories(outsider, per_page=100)
        return len(statements)

    few = cost()
    for index in range(60):
        services.auth.repositories.create(SYSTEM, f"acme/many-{index:02d}", "public")
    assert cost() == few


@pytest.mark.parametrize("anonymous_pull", [False, True])
def test_the_fast_visible_list_answers_as_the_account_service_does(
    make_world: AppFactory, anonymous_pull: bool
) -> None:
    world = make_world(anonymous_pull=anonymous_pull)
    services = world.client.app.state.services
    accounts = services.auth.accounts
    services.auth.repositories.create(SYSTEM, "toplevel", "public")
    services.auth.repositories.create(SYSTEM, "ghost/orphan", "public")  # a namespace with no account
    services.auth.organizations.create_organization(SYSTEM, "beta", [])
    services.auth.repositories.create(SYSTEM, "beta/hidden", "private")
    services.auth.organizations.create_team(SYSTEM, "beta", "crew")
    services.auth.organizations.set_member(SYSTEM, "beta", "crew", "outsider", True)
    services.auth.grants.set_repository_grant(SYSTEM, "beta/hidden", "crew", "read-only")
    services.auth.grants.set_namespace_grant(SYSTEM, "acme", "readers", "read-only")
    identities = [ANONYMOUS, SYSTEM]
    for name in ("outsider", "ro", "rw", "adm", "owner", "alice", "admin"):
        identity = accounts.identity(accounts.user(name).id)
        assert identity is not None
        identities += [identity, replace(identity, read_only=True)]
    for identity in identities:
        expected = browsable(services.auth.permissions, identity)
        assert [r.name for r in services.browser.visible(identity)] == expected, identity


def test_the_api_search_and_the_catalog_cost_the_same_for_few_and_many_repositories(
    make_world: AppFactory,
) -> None:
    world = make_world(scan_workers=0)
    auth_services = world.client.app.state.services.auth
    auth = ("ro", PASSWORD)
    requests = (
        "/api/v1/repositories?limit=100",
        "/api/v1/repositories?limit=100&q=a",
        "/api/v1/repositories?limit=100&sort=last-push",
        "/v2/_catalog?n=100",
    )

    def cost() -> list[int]:
        costs = []
        for url in requests:
            world.client.get(url, auth=auth)  # the credential check's caches warm up first
            with counted(world, any_thread=True) as statements:
                response = world.client.get(url, auth=auth)
            assert response.status_code == 200, response.text
            costs.append(len(statements))
        return costs

    few = cost()
    for index in range(30):
        auth_services.repositories.create(SYSTEM, f"acme/many-{index:02d}", "private")
        auth_services.grants.set_repository_grant(SYSTEM, f"acme/many-{index:02d}", "readers", "read-only")
        auth_services.repositories.create(
            SYSTEM, f"alice/many-{index:02d}", "public" if index % 2 else "private"
        )
    assert cost() == few
