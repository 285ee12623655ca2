"""A private repository's name never reaches someone who may not see it through a listing: not in the web
UI's list (its rows, its count, its namespace filter), not in the API's search or its Link, not in the
catalog or its Link. Variants: hidden names that share a prefix with each other and with visible ones,
hidden names that sort between visible ones, a namespace holding only hidden repositories, and a member
who saw them until deactivated."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from auth_support import PASSWORD, World
from pages_support import SYSTEM, sign_in
from starlette.testclient import TestClient

VISIBLE = ["beta/app", "beta/apq", "beta/zz-public"]
HIDDEN = ["beta/app-secret", "beta/app-secret2", "beta/app-secret2-x", "hidden/one", "hidden/two"]
# Prefixes of hidden names that no visible name has: a cursor carrying one would say a hidden name exists.
HIDDEN_PREFIXES = ["app-", "app-s", "secret", "hidden"]
QUERIES = ["", "app", "app-", "secret", "beta/app-s", "one", "hidden"]


@pytest.fixture
def leaky(world: World) -> World:
    """Organizations beta (public and private names interleaved) and hidden (private only); user `gone`
    belongs to a team with read access to both, and is deactivated."""
    accounts = world.auth.accounts
    accounts.create_user(None, "gone", PASSWORD)
    for org in ("beta", "hidden"):
        world.auth.organizations.create_organization(SYSTEM, org, [])
        world.auth.organizations.create_team(SYSTEM, org, "crew")
        world.auth.organizations.set_member(SYSTEM, org, "crew", "gone", True)
        world.auth.grants.set_namespace_grant(SYSTEM, org, "crew", "read-only")
    for name in VISIBLE:
        world.auth.repositories.create(SYSTEM, name, "public")
    for name in HIDDEN:
        world.auth.repositories.create(SYSTEM, name, "private")
    return world


def _no_hidden(text: str) -> None:
    leaked = [name for name in HIDDEN if name in text]
    assert not leaked, leaked


def _api_walk(
    client: TestClient, auth: tuple[str, str] | None, sees_hidden: bool = False, **params: str
) -> list[str]:
    """Every page of the API's search, one item per page; each Link's cursor is a name already shown."""
    shown: list[str] = []
    query: dict[str, str] = {"limit": "1", **params}
    for _ in range(50):
        response = client.get("/api/v1/repositories", params=query, auth=auth)
        assert response.status_code == 200, response.text
        if not sees_hidden:
            _no_hidden(response.text)
        shown += [item["name"] for item in response.json()]
        link = response.headers.get("link")
        if link is None:
            return shown
        query = {k: v[0] for k, v in parse_qs(urlparse(link.split(";")[0].strip("<>")).query).items()}
        assert query["after"].split(",", 1)[-1] in shown, link
    raise AssertionError("the search never ended")


def _catalog_walk(client: TestClient, auth: tuple[str, str] | None) -> list[str]:
    shown: list[str] = []
    url: str | None = "/v2/_catalog?n=1"
    for _ in range(50):
        if url is None:
            return shown
        response = client.get(url, auth=auth)
        assert response.status_code == 200, response.text
        _no_hidden(response.text)
        shown += response.json()["repositories"]
        link = response.headers.get("link")
        url = None
        if link is not None:
            last = parse_qs(urlparse(link.split(";")[0].strip("<>")).query)["last"][0]
            # Always a name on a page already seen: never a hidden one, nor a string between hidden names.
            assert last in shown and not any(p in last for p in HIDDEN_PREFIXES[1:]), link
            url = link.split(";")[0].strip("<>")
    raise AssertionError("the catalog never ended")


@pytest.mark.parametrize("user", ["outsider", "ro", None])
def test_api_search_and_catalog_name_no_hidden_repository(leaky: World, user: str | None) -> None:
    auth = (user, PASSWORD) if user else None
    client = leaky.client
    for q in QUERIES:
        for namespace in (None, "beta", "hidden"):
            params = {"q": q} if q else {}
            if namespace:
                params["namespace"] = namespace
            for sort in ("name", "last-push"):
                found = _api_walk(client, auth, sort=sort, **params)
                assert not set(found) & set(HIDDEN), (q, namespace, sort)
                if namespace == "hidden":
                    assert found == []
    if user is not None:
        everything = _catalog_walk(client, auth)
        assert [n for n in everything if n.startswith("beta/")] == VISIBLE
    else:
        anonymous = client.get("/v2/_catalog")
        assert anonymous.status_code == 401
        _no_hidden(anonymous.text)


def test_the_ui_list_counts_and_filters_only_what_the_viewer_sees(leaky: World) -> None:
    client = TestClient(leaky.client.app, raise_server_exceptions=False)
    with client:
        sign_in(client, "outsider", PASSWORD)
        for q in QUERIES:
            for namespace in ("", "beta", "hidden"):
                page = client.get("/", params={"q": q, "namespace": namespace}).text
                _no_hidden(page)
                assert '<option value="hidden"' not in page  # no namespace of hidden repositories on offer
                count = int(re.search(r'id="count">(\d+) repositor', page).group(1))  # type: ignore[union-attr]
                rows = re.findall(r'<a href="/repositories/([^"]+)">', page)
                assert count == len(rows), (q, namespace)
                if namespace == "hidden":
                    assert count == 0
        beta = client.get("/", params={"namespace": "beta"}).text
        assert re.findall(r'<a href="/repositories/(beta/[^"]+)">', beta) == VISIBLE


def test_a_deactivated_member_lists_nothing_hidden(leaky: World) -> None:
    auth = ("gone", PASSWORD)
    client = leaky.client
    assert set(HIDDEN) <= set(_api_walk(client, auth, sees_hidden=True))
    session = TestClient(leaky.client.app, raise_server_exceptions=False)
    with session:
        sign_in(session, "gone", PASSWORD)
        assert "hidden/one" in session.get("/", params={"namespace": "hidden"}).text
        leaky.auth.accounts.set_active(SYSTEM, "gone", False)
        for url in ("/", "/?namespace=hidden", "/?q=secret"):
            _no_hidden(session.get(url).text)
    for url in ("/api/v1/repositories", "/api/v1/repositories?q=secret", "/v2/_catalog"):
        response = client.get(url, auth=auth)
        assert response.status_code == 401, (url, response.status_code)
        _no_hidden(response.text)
