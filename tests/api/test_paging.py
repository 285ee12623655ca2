"""Every list of /api/v1 is paged: at most `limit` items (itself bounded), the next page in `Link`, and
walking the pages yields every item once, in order."""

from __future__ import annotations

from typing import Any

import pytest
from auth_support import ADMIN_PASSWORD, PASSWORD, SYSTEM, World

from dockyard.api.paging import MAX_AUDIT_PAGE
from dockyard.content.listing import MAX_PAGE

ADMIN = ("admin", ADMIN_PASSWORD)


def _walk(world: World, path: str, limit: int, auth: Any = ADMIN) -> list[Any]:
    items: list[Any] = []
    url: str | None = path
    params: dict[str, Any] | None = {"limit": limit}
    for _ in range(100):
        response = world.client.get(url or "", params=params, auth=auth)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page) <= limit
        items += page
        link = response.headers.get("link")
        if link is None:
            return items
        assert link.endswith('>; rel="next"') and len(page) == limit
        url, params = link[link.index("<") + 1 : link.index(">")], None
    raise AssertionError("the pages never ended")


@pytest.fixture
def crowded(world: World) -> World:
    """Several of everything: users, organizations, teams, members, grants, tokens, audit events."""
    accounts = world.auth.accounts
    client = world.client
    for i in range(5):
        assert (
            client.post(
                "/api/v1/users", json={"name": f"user-{i}", "password": PASSWORD}, auth=ADMIN
            ).status_code
            == 201
        )
        assert client.post("/api/v1/organizations", json={"name": f"org-{i}"}, auth=ADMIN).status_code == 201
        assert (
            client.post(
                "/api/v1/organizations/acme/teams", json={"name": f"team-{i}"}, auth=ADMIN
            ).status_code
            == 201
        )
        assert (
            client.put(f"/api/v1/organizations/acme/teams/team-0/members/user-{i}", auth=ADMIN).status_code
            == 204
        )
        assert (
            client.post("/api/v1/repositories", json={"name": f"acme/repo-{i}"}, auth=ADMIN).status_code
            == 201
        )
        assert (
            client.put(
                f"/api/v1/organizations/acme/teams/team-0/repositories/acme/repo-{i}",
                json={"level": "read-only"},
                auth=ADMIN,
            ).status_code
            == 204
        )
        assert (
            client.put(
                f"/api/v1/organizations/acme/teams/team-{i}/repositories/acme/repo-0",
                json={"level": "read-write"},
                auth=ADMIN,
            ).status_code
            == 204
        )
        assert client.post("/api/v1/me/tokens", json={"name": f"token-{i}"}, auth=ADMIN).status_code == 201
    assert len(accounts.list_accounts(SYSTEM)) == 18
    return world


LISTS = [
    ("/api/v1/users", lambda item: item["name"], 12),
    ("/api/v1/organizations", lambda item: item["name"], 6),
    ("/api/v1/organizations/acme/teams", lambda item: item["name"], 8),
    ("/api/v1/organizations/acme/teams/team-0/members", lambda item: item, 5),
    ("/api/v1/organizations/acme/teams/team-0/repositories", lambda item: item["repository"], 5),
    ("/api/v1/repository-grants/acme/repo-0", lambda item: item["team"], 5),
    ("/api/v1/me/tokens", lambda item: item["id"], 5),
    ("/api/v1/repositories", lambda item: item["name"], 9),
]


def test_walking_the_pages_yields_every_item_once(crowded: World) -> None:
    for path, key, count in LISTS:
        whole = crowded.client.get(path, params={"limit": MAX_PAGE}, auth=ADMIN)
        assert whole.status_code == 200 and "link" not in whole.headers
        everything = [key(item) for item in whole.json()]
        assert len(everything) == count and len(set(everything)) == count, path
        for limit in (1, 2, 3, count):
            assert [key(item) for item in _walk(crowded, path, limit)] == everything, (path, limit)


def test_audit_is_paged_newest_first(crowded: World) -> None:
    whole = crowded.client.get("/api/v1/audit", params={"limit": MAX_PAGE}, auth=ADMIN).json()
    ids = [event["id"] for event in whole]
    assert ids == sorted(ids, reverse=True) and len(ids) > 20
    assert [event["id"] for event in _walk(crowded, "/api/v1/audit", 7)] == ids


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1, 10**6, 2**63])
def test_page_size_is_bounded(world: World, limit: int) -> None:
    for path in [path for path, _, _ in LISTS]:
        response = world.client.get(path, params={"limit": limit}, auth=ADMIN)
        assert response.status_code == 422 and response.json()["error"]["field"] == "limit", path
    audit_limit = limit if limit != MAX_PAGE + 1 else MAX_AUDIT_PAGE + 1
    response = world.client.get("/api/v1/audit", params={"limit": audit_limit}, auth=ADMIN)
    assert response.status_code == 422 and response.json()["error"]["field"] == "limit"


@pytest.mark.parametrize("cursor", ["abc", "-1", "1" * 30, "\u0661"])
def test_token_cursor_is_checked(world: World, cursor: str) -> None:
    response = world.client.get("/api/v1/me/tokens", params={"after": cursor}, auth=ADMIN)
    assert response.status_code == 422 and response.json()["error"]["field"] == "after"
