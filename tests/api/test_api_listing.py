"""Browsing through /api/v1: repository search (what the caller may see, bounded work per request), tags,
untagged manifests, and deleting one tag or one untagged manifest, never their siblings."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from auth_support import ADMIN_PASSWORD, PASSWORD, World
from sqlalchemy import event, insert

from dockyard.app import Services
from dockyard.content.digests import digest_of, parse_digest
from dockyard.content.manifest_format import OCI_INDEX, OCI_MANIFEST
from dockyard.db.schema import repositories

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scanning"))

from registry_images import IMAGE_CONFIG, TAR_PLAIN, descriptor, push_blob

REPO = "acme/private"
ADMIN = ("admin", ADMIN_PASSWORD)


def _as(user: str) -> tuple[str, str]:
    return ADMIN if user == "admin" else (user, PASSWORD)


def _services(world: World) -> Services:
    services: Services = world.client.app.state.services  # type: ignore[attr-defined]
    return services


def _image(services: Services, name: str, seed: str, *tags: str) -> str:
    """An image manifest (one small layer) pushed by digest, then under each tag; its digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = seed.encode() * 10
    document = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(IMAGE_CONFIG, push_blob(services, name, config), len(config)),
            "layers": [descriptor(TAR_PLAIN, push_blob(services, name, layer), len(layer))],
        }
    ).encode()
    digest = services.manifests.put(name, parse_digest(digest_of(document)), document, OCI_MANIFEST).digest
    for tag in tags:
        services.manifests.put(name, tag, document, OCI_MANIFEST)
    return digest


def _pages(world: World, path: str, auth: Any, **params: Any) -> tuple[list[Any], int]:
    """Every item of a paged list, following Link; and how many requests it took."""
    items: list[Any] = []
    url: str | None = path
    requests = 0
    while url is not None:
        response = world.client.get(url, params=params if requests == 0 else None, auth=auth)
        assert response.status_code == 200, response.text
        items += response.json()
        requests += 1
        link = response.headers.get("link")
        url = link[link.index("<") + 1 : link.index(">")] if link else None
        assert requests < 500
    return items, requests


def test_deleting_a_tag_keeps_its_siblings_and_the_manifest(world: World) -> None:
    services = _services(world)
    digest = _image(services, REPO, "one", "a", "b", "c")
    client = world.client
    assert client.delete(f"/api/v1/repositories/{REPO}/tags/a", auth=_as("rw")).status_code == 204
    tags = client.get(f"/api/v1/repositories/{REPO}/tags", auth=_as("ro")).json()
    assert [(t["name"], t["digest"]) for t in tags] == [("b", digest), ("c", digest)]
    assert client.get(f"/v2/{REPO}/manifests/{digest}", auth=_as("ro")).status_code == 200
    assert client.get(f"/api/v1/repositories/{REPO}/untagged-manifests", auth=_as("ro")).json() == []
    for tag in ("b", "c"):
        assert client.delete(f"/api/v1/repositories/{REPO}/tags/{tag}", auth=_as("rw")).status_code == 204
    untagged = client.get(f"/api/v1/repositories/{REPO}/untagged-manifests", auth=_as("ro")).json()
    assert [m["digest"] for m in untagged] == [digest]
    assert client.get(f"/api/v1/repositories/{REPO}/tags", auth=_as("ro")).json() == []
    gone = client.delete(f"/api/v1/repositories/{REPO}/tags/a", auth=_as("rw"))
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "NOT_FOUND")
    events = client.get("/api/v1/audit", params={"action": "tag.delete"}, auth=ADMIN).json()
    assert {e["target"] for e in events} == {f"{REPO}:{t}" for t in "abc"}
    assert all(e["detail"]["digest"] == digest and e["actor"] == "rw" for e in events)


@pytest.mark.parametrize(
    ("user", "status"), [("ro", 403), ("outsider", 404), (None, 401), ("alice", 404), ("rw", 204)]
)
def test_who_may_delete_a_tag(world: World, user: str | None, status: int) -> None:
    _image(_services(world), REPO, "who", "keep", "doomed")
    response = world.client.delete(
        f"/api/v1/repositories/{REPO}/tags/doomed", auth=_as(user) if user else None
    )
    assert response.status_code == status, response.text
    tags = [t["name"] for t in world.client.get(f"/api/v1/repositories/{REPO}/tags", auth=ADMIN).json()]
    assert tags == (["keep"] if status == 204 else ["doomed", "keep"])


def test_deleting_an_untagged_manifest(world: World) -> None:
    services = _services(world)
    client = world.client
    base = f"/api/v1/repositories/{REPO}/manifests"
    tagged = _image(services, REPO, "tagged", "latest")
    refused = client.delete(f"{base}/{tagged}", auth=_as("rw"))
    assert refused.status_code == 409 and "latest" in refused.json()["error"]["message"]
    loose = _image(services, REPO, "loose")
    child = _image(services, REPO, "child")
    size = len(services.manifests.get(REPO, parse_digest(child)).content)
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, child, size)]}
    ).encode()
    services.manifests.put(REPO, "multi", index, OCI_INDEX)
    listed = client.get(f"/api/v1/repositories/{REPO}/untagged-manifests", auth=_as("ro")).json()
    assert [m["digest"] for m in listed] == [loose]
    assert client.delete(f"{base}/{child}", auth=_as("rw")).status_code == 409
    assert client.delete(f"{base}/{loose}", auth=_as("ro")).status_code == 403
    assert client.delete(f"{base}/{loose}", auth=_as("rw")).status_code == 204
    assert client.delete(f"{base}/{loose}", auth=_as("rw")).status_code == 404
    assert client.get(f"/v2/{REPO}/manifests/{tagged}", auth=_as("ro")).status_code == 200
    for bad in ("sha256:abc", "md5:" + "0" * 32, "sha256:" + "G" * 64, "latest"):
        assert client.delete(f"{base}/{bad}", auth=_as("rw")).status_code == 400, bad
    events = client.get("/api/v1/audit", params={"action": "manifest.delete"}, auth=ADMIN).json()
    assert [e["target"] for e in events] == [f"{REPO}@{loose}"]


def test_tags_and_untagged_are_paged(world: World) -> None:
    services = _services(world)
    names = [f"v{i:02d}" for i in range(7)]
    digest = _image(services, REPO, "paged", *names)
    loose = sorted(_image(services, REPO, f"loose{i}") for i in range(5))
    tags, requests = _pages(world, f"/api/v1/repositories/{REPO}/tags", _as("ro"), limit=3)
    assert [t["name"] for t in tags] == names and requests == 3
    assert {t["digest"] for t in tags} == {digest}
    untagged, requests = _pages(world, f"/api/v1/repositories/{REPO}/untagged-manifests", _as("ro"), limit=2)
    assert [m["digest"] for m in untagged] == loose and requests == 3


def _names(items: list[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in items]


def test_search_shows_only_what_the_caller_may_see(world: World) -> None:
    for name in ("acme/web-private", "alice/web-secret"):
        assert world.client.post("/api/v1/repositories", json={"name": name}, auth=ADMIN).status_code == 201
    assert (
        world.client.post(
            "/api/v1/repositories", json={"name": "acme/web-public", "visibility": "public"}, auth=ADMIN
        ).status_code
        == 201
    )
    search = "/api/v1/repositories"
    assert _names(_pages(world, search, ADMIN, q="web")[0]) == [
        "acme/web-private",
        "acme/web-public",
        "alice/web-secret",
    ]
    # Through a namespace-wide role, or as owner, or only public ones: never another's private names.
    assert _names(_pages(world, search, _as("owner"), q="web")[0]) == ["acme/web-private", "acme/web-public"]
    assert _names(_pages(world, search, _as("alice"), q="web")[0]) == ["acme/web-public", "alice/web-secret"]
    assert _names(_pages(world, search, _as("outsider"), q="web")[0]) == ["acme/web-public"]
    for query in ("secret", "web-secret", "alice/web", "private"):
        found = _names(_pages(world, search, _as("outsider"), q=query)[0])
        assert all("secret" not in n and "private" not in n for n in found), (query, found)
    assert _names(_pages(world, search, ADMIN, namespace="alice")[0]) == [
        "alice/private",
        "alice/public",
        "alice/web-secret",
    ]
    assert _names(_pages(world, search, ADMIN, visibility="public", q="acme")[0]) == [
        "acme/public",
        "acme/web-public",
    ]
    # Like-patterns are text, not wildcards.
    assert _pages(world, search, ADMIN, q="%")[0] == [] and _pages(world, search, ADMIN, q="_")[0] == []
    anonymous = world.client.get(search, params={"q": "web"})
    assert anonymous.status_code == 200 and _names(anonymous.json()) == []


def test_search_sorts_by_last_push(world: World) -> None:
    services = _services(world)
    for name in ("alice/older", "alice/newer", "alice/never"):
        assert world.client.post("/api/v1/repositories", json={"name": name}, auth=ADMIN).status_code == 201
    _image(services, "alice/older", "o", "latest")
    time.sleep(0.01)
    _image(services, "alice/newer", "n", "latest")
    items, requests = _pages(world, "/api/v1/repositories", _as("alice"), sort="last-push", limit=1)
    names = _names(items)
    assert names[:2] == ["alice/newer", "alice/older"] and requests == len(names)
    assert set(names[2:]) == {"alice/never", "alice/private", "alice/public", "acme/public"}
    assert items[0]["last_pushed_at"] is not None and items[-1]["last_pushed_at"] is None
    for cursor in ("nonsense", "nan,alice/x", "inf,alice/x", "1e999,x"):
        response = world.client.get(
            "/api/v1/repositories", params={"sort": "last-push", "after": cursor}, auth=ADMIN
        )
        assert response.status_code == 400 and response.json()["error"]["field"] == "after", cursor


def test_search_does_bounded_work_for_a_caller_who_sees_little(world: World) -> None:
    """Thousands of private repositories and an outsider who may see one among them: the first request
    finds it in a few statements, reading no hidden row, and its answer names nothing hidden."""
    services = _services(world)
    with services.db.write() as conn:
        conn.execute(
            insert(repositories),
            [
                {"name": f"zz/hidden-{i:05d}", "created_at": 0.0, "visibility": "private"}
                for i in range(10_050)
            ],
        )
        conn.execute(
            insert(repositories), [{"name": "zz/hidden-09999x", "created_at": 0.0, "visibility": "public"}]
        )
    statements: list[str] = []

    def count(*_args: Any) -> None:
        statements.append("x")

    event.listen(services.db.engine, "before_cursor_execute", count)
    try:
        first = world.client.get("/api/v1/repositories", params={"namespace": "zz"}, auth=_as("outsider"))
    finally:
        event.remove(services.db.engine, "before_cursor_execute", count)
    assert first.status_code == 200 and _names(first.json()) == ["zz/hidden-09999x"]
    assert "link" not in first.headers
    assert len(statements) <= 20, len(statements)  # the caller, its credential, the page
    for sort in ("name", "last-push"):
        found, requests = _pages(world, "/api/v1/repositories", _as("outsider"), namespace="zz", sort=sort)
        assert _names(found) == ["zz/hidden-09999x"] and requests == 1


def test_scan_summary_is_paged_and_bounded(world: World) -> None:
    services = _services(world)
    names = ["a", "b", "c"]
    digest = _image(services, REPO, "summary", *names)
    path = f"/api/v1/repositories/{REPO}/scan-summary"
    items, requests = _pages(world, path, _as("ro"), limit=1)
    assert [(s["tag"], s["digest"]) for s in items] == [(n, digest) for n in names] and requests == 3
    too_many = world.client.get(path, params={"limit": 51}, auth=_as("ro"))
    assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "limit"
