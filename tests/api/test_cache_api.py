"""/api/v1/caches and the choice of cache: who may register, who may choose for whom, which choice wins, and
the /v2/ redirect it leads to (only for a user allowed to pull, only to a cache that answers)."""

from __future__ import annotations

import hashlib
import time
from urllib.parse import parse_qs, urlsplit

from auth_support import ADMIN_PASSWORD, PASSWORD, World

from dockyard.app import Services
from dockyard.cache.grants import verify_grant
from dockyard.db import caches as q

ADMIN = ("admin", ADMIN_PASSWORD)
CA_PEM = "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"


def _services(world: World) -> Services:
    services: Services = world.client.app.state.services  # type: ignore[attr-defined]
    return services


def _register(world: World, name: str, url: str, healthy: bool = True) -> None:
    assert world.client.post("/api/v1/caches", json={"name": name, "url": url}, auth=ADMIN).status_code == 201
    # What the periodic /_ping check would record (the tests here run no cache node).
    with _services(world).db.write() as conn:
        row = q.cache_by_name(conn, name)
        assert row is not None
        q.save_check(conn, row.id, healthy, time.time(), "" if healthy else "refused", '{"hits": 1}')


def test_only_administrators_register_and_remove_caches(world: World) -> None:
    body = {"name": "asia", "url": "http://cache-asia.example:5001"}
    for user in ("alice", "owner", "adm"):
        assert world.client.post("/api/v1/caches", json=body, auth=(user, PASSWORD)).status_code == 403
    assert world.client.post("/api/v1/caches", json=body).status_code == 401
    created = world.client.post("/api/v1/caches", json=body, auth=ADMIN)
    assert created.status_code == 201 and created.json()["url"] == "http://cache-asia.example:5001"
    assert world.client.post("/api/v1/caches", json=body, auth=ADMIN).status_code == 409
    assert world.client.delete("/api/v1/caches/asia", auth=("alice", PASSWORD)).status_code == 403
    assert world.client.delete("/api/v1/caches/asia", auth=ADMIN).status_code == 204
    assert world.client.delete("/api/v1/caches/asia", auth=ADMIN).status_code == 404


def test_bad_cache_definitions_are_refused(world: World) -> None:
    for body in (
        {"name": "Asia!", "url": "http://a.example"},
        {"name": "asia", "url": "ftp://a.example"},
        {"name": "asia", "url": "http://user:pw@a.example"},
        {"name": "asia", "url": "http://a.example/?x=1"},
        {"name": "asia", "url": "not a url"},
        {"name": "asia", "url": 'http://x.example/"><script>alert(1)</script>'},
        {"name": "asia", "url": "http://x.example/a b"},
        {"name": "asia", "url": "http://x.example#frag"},
        {"name": "asia", "url": "javascript:alert(1)"},
        {"name": "asia", "url": "http://a.example", "ca_certificate": CA_PEM},
        {"name": "asia", "url": "http://a.example", "surprise": True},
        {"name": "x" * 65, "url": "http://a.example"},
    ):
        answer = world.client.post("/api/v1/caches", json=body, auth=ADMIN)
        assert answer.status_code in {400, 422}, body
        assert "error" in answer.json()


def test_users_see_names_not_health_and_choose_for_themselves_only(world: World) -> None:
    _register(world, "asia", "http://asia.example")
    listed = world.client.get("/api/v1/caches", auth=("alice", PASSWORD)).json()
    assert listed == [
        {
            "name": "asia",
            "url": "http://asia.example",
            "has_ca_certificate": False,
            "created_at": listed[0]["created_at"],
            "healthy": None,
            "checked_at": None,
            "last_error": None,
            "stats": None,
        }
    ]
    assert world.client.get("/api/v1/caches", auth=ADMIN).json()[0]["stats"] == {"hits": 1}
    assert world.client.get("/api/v1/caches").status_code == 401

    me = world.client.patch("/api/v1/me", json={"cache": "asia"}, auth=("alice", PASSWORD))
    assert me.status_code == 200 and me.json()["cache"] == "asia"
    assert world.client.get("/api/v1/me", auth=("alice", PASSWORD)).json()["cache"] == "asia"
    unknown = world.client.patch("/api/v1/me", json={"cache": "mars"}, auth=("alice", PASSWORD))
    assert unknown.status_code == 404
    full_name_only = world.client.patch("/api/v1/me", json={"full_name": "Alice"}, auth=("alice", PASSWORD))
    assert full_name_only.json()["cache"] == "asia", "a field left out stays"

    other = world.client.put("/api/v1/users/ro/cache", json={"cache": "asia"}, auth=("alice", PASSWORD))
    assert other.status_code == 403
    assert world.client.put("/api/v1/users/ro/cache", json={"cache": "asia"}, auth=ADMIN).status_code == 200
    for path in ("/organizations/acme/cache", "/organizations/acme/teams/readers/cache"):
        refused = world.client.put(f"/api/v1{path}", json={"cache": "asia"}, auth=("owner", PASSWORD))
        assert refused.status_code == 403
    cleared = world.client.patch("/api/v1/me", json={"cache": None}, auth=("alice", PASSWORD))
    assert cleared.json()["cache"] is None


def test_own_choice_then_team_then_organization_and_only_when_answering(world: World) -> None:
    _register(world, "asia", "http://asia.example")
    _register(world, "europe", "http://europe.example")
    _register(world, "down", "http://down.example", healthy=False)
    caches = _services(world).caches
    users = {name: world.auth.accounts.user(name).id for name in ("ro", "rw", "owner", "alice")}
    put = world.client.put
    assert put("/api/v1/organizations/acme/cache", json={"cache": "europe"}, auth=ADMIN).status_code == 200
    team = put("/api/v1/organizations/acme/teams/readers/cache", json={"cache": "asia"}, auth=ADMIN)
    assert team.status_code == 200

    def serving(user: str) -> str | None:
        row = caches.serving(users[user])
        return row.name if row else None

    assert serving("ro") == "asia", "a team's default before the organization's"
    assert serving("rw") == "europe" and serving("owner") == "europe"
    assert serving("alice") is None
    assert put("/api/v1/users/ro/cache", json={"cache": "down"}, auth=ADMIN).status_code == 200
    assert serving("ro") is None, "the user's own cache, down: the registry serves, no fallback elsewhere"
    assert world.client.delete("/api/v1/caches/down", auth=ADMIN).status_code == 204
    assert serving("ro") == "asia", "removing a cache removes the choices of it"


def test_blob_pull_redirects_with_a_grant_for_that_blob_only(world: World) -> None:
    data = b"layer bytes for the cache"
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    started = world.client.post("/v2/acme/private/blobs/uploads/", auth=ADMIN)
    assert started.status_code == 202, started.text
    done = world.client.put(f"{started.headers['location']}?digest={digest}", content=data, auth=ADMIN)
    assert done.status_code == 201, done.text
    _register(world, "asia", "http://asia.example:5001")
    for user in ("ro", "outsider"):
        chosen = world.client.put(f"/api/v1/users/{user}/cache", json={"cache": "asia"}, auth=ADMIN)
        assert chosen.status_code == 200

    url = f"/v2/acme/private/blobs/{digest}"
    redirect = world.client.get(url, auth=("ro", PASSWORD), follow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["cache-control"] == "no-store", "the grant expires long before a blob's max-age"
    location = urlsplit(redirect.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"http://asia.example:5001{url}"
    grant = parse_qs(location.query)["dyg"][0]
    claims = verify_grant(grant, world.auth.keys.public_key, "acme/private", digest)
    assert claims.user == "ro" and claims.expires_at <= time.time() + 120 + 1

    assert world.client.head(url, auth=("ro", PASSWORD)).status_code == 200, "HEAD is answered here"
    assert world.client.get(url, auth=("rw", PASSWORD)).content == data, "no cache chosen: served here"
    assert world.client.get(url, auth=("outsider", PASSWORD), follow_redirects=False).status_code == 403
    assert world.client.get(url, follow_redirects=False).status_code == 401
    # The cache's fetch: the grant opens exactly this blob, with no other credentials.
    assert world.client.get(f"{url}?dyg={grant}").content == data
    other = world.client.get(f"/v2/acme/public/blobs/{digest}?dyg={grant}")
    assert other.status_code == 403 and other.json()["errors"][0]["code"] == "DENIED"
    assert world.client.get(f"{url}?dyg={grant[:-3]}abc").status_code == 403
