"""Content caches in the UI: administrators add and remove them on the system page; each user picks one (or
none) in their profile; hostile values stay text."""

from __future__ import annotations

from auth_support import ADMIN_PASSWORD, PASSWORD, World
from pages_support import post_form, sign_in
from starlette.testclient import TestClient


def _as(world: World, user: str) -> TestClient:
    client = TestClient(world.client.app, raise_server_exceptions=False)
    client.__enter__()
    return sign_in(client, user, ADMIN_PASSWORD if user == "admin" else PASSWORD)


def test_administrators_add_and_remove_caches_users_choose_one(world: World) -> None:
    admin = _as(world, "admin")
    added = post_form(
        admin, "/system", "/system/caches", {"action": "add", "name": "asia", "url": "http://asia.example"}
    )
    assert added.status_code in {200, 303}
    system = admin.get("/system").text
    assert 'data-cache="asia"' in system and "http://asia.example" in system
    bad = post_form(
        admin, "/system", "/system/caches", {"action": "add", "name": "Bad Name", "url": "http://x"}
    )
    assert bad.status_code == 400 and "cache name" in bad.text

    alice = _as(world, "alice")
    assert alice.get("/system").status_code == 403
    refused = post_form(alice, "/profile", "/system/caches", {"action": "remove", "name": "asia"})
    assert refused.status_code == 403
    profile = alice.get("/profile").text
    assert '<option value="asia"' in profile
    chosen = post_form(alice, "/profile", "/profile/cache", {"cache": "asia"})
    assert chosen.status_code in {200, 303}
    assert world.client.get("/api/v1/me", auth=("alice", PASSWORD)).json()["cache"] == "asia"
    assert '<option value="asia" selected>' in alice.get("/profile").text
    unknown = post_form(alice, "/profile", "/profile/cache", {"cache": "mars"})
    assert unknown.status_code == 404
    post_form(alice, "/profile", "/profile/cache", {"cache": ""})
    assert world.client.get("/api/v1/me", auth=("alice", PASSWORD)).json()["cache"] is None

    removed = post_form(admin, "/system", "/system/caches", {"action": "remove", "name": "asia"})
    assert removed.status_code in {200, 303}
    assert 'data-cache="asia"' not in admin.get("/system").text


def test_a_hostile_cache_url_is_refused_or_shown_as_text(world: World) -> None:
    admin = _as(world, "admin")
    hostile = 'http://x.example/"><script>alert(1)</script>'
    answer = post_form(admin, "/system", "/system/caches", {"action": "add", "name": "evil", "url": hostile})
    assert answer.status_code == 400
    assert "<script>alert(1)</script>" not in answer.text
