"""The web UI and the API record the same audit events for the same action: the services record them,
not the surfaces."""

from __future__ import annotations

import json
from typing import Any

from auth_support import ADMIN_PASSWORD, PASSWORD, World
from pages_support import SYSTEM, post_form, sign_in
from starlette.testclient import TestClient


def _client(world: World, user: str) -> TestClient:
    client = TestClient(world.client.app, raise_server_exceptions=False)
    client.__enter__()
    return sign_in(client, user, PASSWORD)


def _event(world: World, action: str, target: str) -> tuple[Any, ...]:
    """The newest event of `action` on `target`, without its id and time."""
    row = next(e for e in world.auth.audit.events(SYSTEM, action=action, limit=1000) if e.target == target)
    return (row.action, row.actor, row.address, row.outcome, json.loads(row.detail))


def test_a_ui_action_and_the_same_api_action_record_the_same_event(world: World) -> None:
    owner, alice = _client(world, "owner"), _client(world, "alice")
    api_owner, api_alice = {"auth": ("owner", PASSWORD)}, {"auth": ("alice", PASSWORD)}
    org = "/organizations/acme"
    pairs = []

    assert post_form(owner, org, f"{org}/team", {"team": "by-ui"}).status_code == 303
    made = world.client.post("/api/v1/organizations/acme/teams", json={"name": "by-api"}, **api_owner)
    assert made.status_code == 201, made.text
    pairs.append(("team.create", "acme/by-ui", "acme/by-api"))

    assert post_form(owner, org, f"{org}/member", {"team": "by-ui", "user": "rw"}).status_code == 303
    added = world.client.put("/api/v1/organizations/acme/teams/by-api/members/rw", **api_owner)
    assert added.status_code == 204, added.text
    pairs.append(("team.member.add", "acme/by-ui", "acme/by-api"))

    assert (
        post_form(owner, org, f"{org}/namespace-grant", {"team": "by-ui", "level": "read-only"}).status_code
        == 303
    )
    granted = world.client.put(
        "/api/v1/organizations/acme/teams/by-api/namespace-access", json={"level": "read-only"}, **api_owner
    )
    assert granted.status_code in (200, 204), granted.text
    pairs.append(("grant.namespace.set", "acme/by-ui", "acme/by-api"))

    page = "/repositories/acme/private"
    assert (
        post_form(owner, page, f"{page}/-/grant", {"team": "by-ui", "level": "read-write"}).status_code == 303
    )
    repo_grant = world.client.put(
        "/api/v1/organizations/acme/teams/by-ui/repositories/acme/public",
        json={"level": "read-write"},
        **api_owner,
    )
    assert repo_grant.status_code in (200, 204), repo_grant.text
    pairs.append(("grant.repository.set", "acme/private", "acme/public"))

    new = {"namespace": "alice", "name": "by-ui", "visibility": "private"}
    assert post_form(alice, "/new-repository", "/new-repository", new).status_code == 303
    created = world.client.post("/api/v1/repositories", json={"name": "alice/by-api"}, **api_alice)
    assert created.status_code == 201, created.text
    pairs.append(("repository.create", "alice/by-ui", "alice/by-api"))

    settings = {"visibility": "public", "description": "", "scan_on_push": "on"}
    assert (
        post_form(
            alice, "/repositories/alice/by-ui", "/repositories/alice/by-ui/-/settings", settings
        ).status_code
        == 303
    )
    patched = world.client.patch(
        "/api/v1/repositories/alice/by-api",
        json={"visibility": "public", "description": "", "scan_on_push": True},
        **api_alice,
    )
    assert patched.status_code == 200, patched.text
    pairs += [("repository.visibility", "alice/by-ui", "alice/by-api")]
    pairs += [("repository.scan_on_push", "alice/by-ui", "alice/by-api")]

    for action, by_ui, by_api in pairs:
        assert _event(world, action, by_ui) == _event(world, action, by_api), action
    # Nothing was recorded twice, nor under a name of the UI's own.
    events = world.auth.audit.events(SYSTEM, limit=1000)
    assert [e.target for e in events if e.action == "team.create" and e.actor == "owner"] == [
        "acme/by-api",
        "acme/by-ui",
    ]
    actions = [e.action for e in events]
    assert not [a for a in actions if a.startswith(("organization.", "repository.settings"))]


def test_caches_and_collections_are_recorded_by_their_services(world: World) -> None:
    admin = TestClient(world.client.app, raise_server_exceptions=False)
    admin.__enter__()
    sign_in(admin, "admin", ADMIN_PASSWORD)
    api_admin = {"auth": ("admin", ADMIN_PASSWORD)}
    form = {"name": "by-ui", "url": "https://ui.example:5001", "ca_certificate": ""}
    assert post_form(admin, "/system", "/system/caches", form).status_code == 303
    made = world.client.post(
        "/api/v1/caches", json={"name": "by-api", "url": "https://ui.example:5001"}, **api_admin
    )
    assert made.status_code == 201, made.text
    assert _event(world, "cache.add", "by-ui") == _event(world, "cache.add", "by-api")

    alice = _client(world, "alice")
    assert post_form(alice, "/profile", "/profile/cache", {"cache": "by-ui"}).status_code == 303
    ui_choice = _event(world, "user.cache", "alice")
    chosen = world.client.patch("/api/v1/me", json={"cache": "by-ui"}, auth=("alice", PASSWORD))
    assert chosen.status_code == 200, chosen.text
    assert ui_choice[:2] == ("user.cache", "alice") and ui_choice[4] == {"cache": "by-ui"}
    assert _event(world, "user.cache", "alice") == ui_choice

    assert (
        post_form(admin, "/system", "/system/caches", {"name": "by-ui", "action": "remove"}).status_code
        == 303
    )
    assert world.client.delete("/api/v1/caches/by-api", **api_admin).status_code == 204
    assert _event(world, "cache.remove", "by-ui") == _event(world, "cache.remove", "by-api")

    # A collection someone ran is recorded once; a dry run and the periodic collection are not.
    assert post_form(admin, "/system", "/system/gc", {"mode": "dry-run"}).status_code == 200
    assert post_form(admin, "/system", "/system/gc", {"mode": "run"}).status_code == 200
    world.client.app.state.services.gc.run()
    runs = [e for e in world.auth.audit.events(SYSTEM, action="gc.run", limit=100)]
    assert [(e.actor, e.target) for e in runs] == [("admin", "blobs")]
    cache_events = [e.action for e in world.auth.audit.events(SYSTEM, limit=1000) if "cache" in e.action]
    assert (
        sorted(cache_events)
        == ["cache.add", "cache.add", "cache.remove", "cache.remove"] + ["user.cache"] * 2
    )
