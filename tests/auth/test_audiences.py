"""Credentials have audiences: registry and refresh tokens never open /api/v1.

Every /api/v1 operation is enumerated from the application itself, so a new route is covered the day it
is added; each is called with registry tokens of every scope and with a refresh token, and must answer
401 without changing anything in the database.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from auth_support import ADMIN_PASSWORD, PASSWORD, World
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select
from starlette.routing import Mount

from dockyard.api.deps import caller
from dockyard.db.schema import metadata

DIGEST = "sha256:" + "a" * 64
# A valid body for every operation that takes one, so a wrongly accepted credential would change things.
BODIES: dict[str, Any] = {
    "POST /session": {"username": "alice", "password": PASSWORD},
    "PATCH /me": {"full_name": "Changed"},
    "PUT /me/password": {"current_password": PASSWORD, "new_password": "brand-new-password"},
    "POST /me/tokens": {"name": "stolen"},
    "POST /users": {"name": "intruder", "password": "intruder-password", "is_admin": True},
    "PATCH /users/{name}": {"is_admin": True, "password": "reset-password-1"},
    "POST /organizations": {"name": "evilcorp", "owners": ["alice"]},
    "POST /organizations/{org}/teams": {"name": "evil"},
    "PUT /organizations/{org}/teams/{team}/namespace-access": {"level": "admin"},
    "PUT /organizations/{org}/teams/{team}/repositories/{name:path}": {"level": "admin"},
    "POST /repositories": {"name": "alice/new", "visibility": "public"},
    "PATCH /repositories/{name:path}": {"visibility": "public"},
    "POST /caches": {"name": "rogue", "url": "https://127.0.0.1:9443"},
    "PUT /system/settings": {"scan_on_push_default": False},
    "PUT /users/{user}/cache": {"cache": None},
    "PUT /organizations/{org}/cache": {"cache": None},
    "PUT /organizations/{org}/teams/{team}/cache": {"cache": None},
    "PUT /repositories/{name:path}/manifests/{reference}/vulnerabilities/{vuln_id}/hidden": {
        "package": "openssl",
        "reason": "hidden by a stolen token",
    },
}
QUERIES: dict[str, dict[str, str]] = {
    "DELETE /repositories/{name:path}/manifests/{reference}/vulnerabilities/{vuln_id}/hidden": {
        "package": "openssl"
    },
}
# Operations that take no credential at all: the session login reads its credentials from the body.
NO_CREDENTIALS = {"POST /session"}


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            # The interactive docs' pages are public and take no credential; every operation is published.
            if route.include_in_schema:
                found.append(route)
        elif hasattr(route, "original_router"):  # an included router
            found.extend(_api_routes(route.original_router.routes))
    return found


def _operations(world: World) -> list[tuple[str, APIRoute]]:
    api = next(r.app for r in world.client.app.routes if isinstance(r, Mount) and r.path == "/api/v1")
    assert isinstance(api, FastAPI)
    operations = [(method, route) for route in _api_routes(api.routes) for method in sorted(route.methods)]
    # Every operation the OpenAPI schema publishes is here, and nothing else.
    published = {(m.upper(), path) for path, item in api.openapi()["paths"].items() for m in item}
    assert {(m, re.sub(r":path}", "}", r.path)) for m, r in operations} == published
    assert len(operations) > 40
    return operations


def _path(route: APIRoute, token_id: str) -> str:
    values = {
        "org": "acme",
        "team": "writers",
        "user": "alice",
        "tag": "latest",
        "digest": DIGEST,
        "token_id": token_id,
        "reference": DIGEST,
        "vuln_id": "CVE-2024-0001",
    }

    def value(match: re.Match[str]) -> str:
        param = match.group(1).split(":")[0]
        if param == "name":
            if route.path.startswith("/caches/"):
                return "rogue"
            if route.path.startswith("/users/"):
                return "rw"
            if "/owners/" in route.path or "/members/" in route.path:
                return "outsider"
            return "acme/private"
        return values[param]

    return "/api/v1" + re.sub(r"\{([^}]+)\}", value, route.path)


def _depends_on_caller(route: APIRoute) -> bool:
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if dependency.call is caller:
            return True
        pending.extend(dependency.dependencies)
    return False


# Renewed by the replica's own background work (leases, heartbeats), whatever requests arrive.
_BACKGROUND_TABLES = {"leases", "replicas"}


def _snapshot(world: World) -> dict[str, list[tuple[Any, ...]]]:
    with world.auth.accounts.db.read() as conn:
        return {
            table.name: sorted(map(tuple, conn.execute(select(table))), key=repr)
            for table in metadata.sorted_tables
            if table.name not in _BACKGROUND_TABLES
        }


def _call(
    world: World,
    method: str,
    route: APIRoute,
    headers: dict[str, str],
    token_id: str,
    password: str = PASSWORD,
) -> int:
    key = f"{method} {route.path}"
    kwargs: dict[str, Any] = {"headers": headers, "params": QUERIES.get(key, {})}
    if key in BODIES:
        body = BODIES[key]
        kwargs["json"] = {**body, "current_password": password} if "current_password" in body else body
    elif route.path == "/vulndb/imports":
        kwargs["files"] = {"file": ("osv.json", b"[]", "application/json")}
    elif route.body_field is not None:
        pytest.fail(f"add a valid body for {key} to BODIES")
    return world.client.request(method, _path(route, token_id), **kwargs).status_code


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def _refresh_token(world: World) -> str:
    response = world.client.get(
        "/auth/token",
        params={"service": world.settings.service, "offline_token": "true"},
        auth=("alice", PASSWORD),
    )
    assert response.status_code == 200
    return str(response.json()["refresh_token"])


def _access_token(world: World) -> tuple[str, str]:
    made = world.client.post("/api/v1/me/tokens", json={"name": "ci"}, auth=("alice", PASSWORD))
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["token"]


def test_registry_and_refresh_tokens_open_no_api_operation(world: World) -> None:
    token_id, access_token = _access_token(world)
    minted_with_access_token = world.client.get(
        "/auth/token",
        params={"service": world.settings.service, "scope": "repository:alice/private:pull,push"},
        auth=("alice", access_token),
    ).json()["token"]
    refresh = _refresh_token(world)
    credentials = {
        "pull": world.token("alice", "repository:alice/private:pull"),
        "push": world.token("alice", "repository:alice/private:push"),
        "pull+push": world.token("alice", "repository:alice/private:pull,push"),
        "*": world.token("alice", "repository:alice/private:*"),
        "catalog": world.token("alice", "registry:catalog:*"),
        "no scope": world.token("alice"),
        "anonymous": world.token(None, "repository:acme/public:pull"),
        "administrator": world.token("admin", "repository:acme/private:*", "registry:catalog:*"),
        "minted with an access token": minted_with_access_token,
    }
    headers = {label: f"Bearer {token}" for label, token in credentials.items()}
    headers["refresh token as bearer"] = f"Bearer {refresh}"
    headers["refresh token as Basic password"] = _basic("alice", refresh)
    # Half the calls also carry alice's session cookie and CSRF token: a refused header never falls back
    # to the cookie it rides along with.
    login = world.client.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    csrf = login.json()["csrf_token"]
    before = _snapshot(world)
    unexpected = []
    try:
        for method, route in _operations(world):
            key = f"{method} {route.path}"
            if key in NO_CREDENTIALS:
                assert not _depends_on_caller(route)
                continue
            assert _depends_on_caller(route), f"{key} checks no credentials"
            for i, (label, header) in enumerate(headers.items()):
                if i % 2:
                    world.client.cookies.clear()
                else:
                    world.client.cookies.update(login.cookies)
                status = _call(
                    world, method, route, {"Authorization": header, "X-CSRF-Token": csrf}, token_id
                )
                if status != 401:
                    unexpected.append((key, label, status))
    finally:
        world.client.cookies.clear()
    assert unexpected == []
    assert _snapshot(world) == before


def test_the_same_calls_with_a_password_get_past_authentication(world: World) -> None:
    # The control: the paths and bodies above are good enough that a right credential is let in.
    token_id, _ = _access_token(world)
    statuses = {}
    # Backwards, so reads come before deletes; the password change last, as it ends the old password.
    operations = sorted(reversed(_operations(world)), key=lambda op: op[1].path == "/me/password")
    for method, route in operations:
        key = f"{method} {route.path}"
        if key in NO_CREDENTIALS:
            continue
        admin = {"Authorization": _basic("admin", ADMIN_PASSWORD)}
        statuses[key] = _call(world, method, route, admin, token_id, ADMIN_PASSWORD)
    refused = [(key, status) for key, status in statuses.items() if status in {401, 422}]
    assert refused == []
    assert sum(1 for status in statuses.values() if status < 300) > len(statuses) // 2


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_api_says_why_a_registry_token_is_refused(world: World, scheme: str) -> None:
    token = world.token("admin", "repository:acme/private:*")
    response = world.client.get("/api/v1/me", headers={"Authorization": f"{scheme} {token}"})
    assert response.status_code == 401
    assert "registry token opens /v2/ only" in response.json()["error"]["message"]


def test_registry_tokens_still_open_v2_within_their_access(world: World) -> None:
    pull = world.token("alice", "repository:alice/private:pull")
    headers = {"Authorization": f"Bearer {pull}"}
    assert world.client.get("/v2/alice/private/tags/list", headers=headers).status_code in {200, 404}
    denied = world.client.post("/v2/alice/private/blobs/uploads/", headers=headers)
    assert denied.status_code == 401 and "insufficient_scope" in denied.headers["www-authenticate"]
    other = world.client.get("/v2/acme/private/tags/list", headers=headers)
    assert other.status_code in {401, 403}


def test_a_session_cookie_does_not_open_v2(world: World) -> None:
    login = world.client.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    assert login.status_code == 200
    try:
        assert world.client.get("/v2/alice/private/tags/list").status_code == 401
    finally:
        world.client.cookies.clear()
