"""Listings do bounded database work per request whatever `n` and whatever the caller may see,
and a flood of cheap anonymous requests does not stall an authenticated pull."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from registry_support import (
    OCI_MANIFEST,
    guarded,
    image_manifest,
    put_manifest,
    registry_token,
    services_of,
    sha256,
)
from sqlalchemy import event, insert
from starlette.applications import Starlette
from starlette.testclient import TestClient

from dockyard.app import Services
from dockyard.db import content as q
from dockyard.db.engine import Database
from dockyard.db.schema import repositories
from dockyard.registry import listing

HIDDEN_BEFORE = [f"aaa{i:04d}/hidden" for i in range(2500)]
HIDDEN_AFTER = [f"zzz{i:04d}/hidden" for i in range(2500)]
VISIBLE = ["alice/one", "alice/three", "alice/two"]
# Per request: the caller's identity and one page of the names it may see (a few statements); a query
# per repository would take thousands.
MAX_STATEMENTS = 30
# Names read per request: one page and the look-ahead, whatever n; hidden names stay in the database.
MAX_NAMES_READ = listing.MAX_PAGE + 1


@dataclass
class Registry:
    """An app with access control on: alice owns three of 5,003 repositories."""

    app: Starlette
    client: TestClient
    services: Services

    def token(self, user: str | None, scope: str) -> str:
        return registry_token(self.client, user, scope.split(" "))


_BACKGROUND = re.compile(r"\b(replicas|leases|jobs|daily_activity|vulnerability_snapshots)\b")


class StatementCounter:
    """Counts every statement the database runs: through SQLAlchemy and through quick_rows."""

    def __init__(self, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.rows = 0
        event.listen(db.engine, "before_cursor_execute", self._seen)
        quick_rows = db.quick_rows

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            rows = quick_rows(*args, **kwargs)
            self.rows += len(rows)
            return rows

        monkeypatch.setattr(db, "quick_rows", counted)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The process's own periodic bookkeeping (heartbeat, leases, jobs, activity) may land inside a
        # request on a slow machine: it is not the request's work.
        if not _BACKGROUND.search(statement):
            self.count += 1


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """Access control on, on SQLite; no scan workers, whose queries would be counted too."""
    # The account standing is read once per window: a slow machine must not land it in a counted request.
    with guarded(tmp_path / "data", ["alice"], token_account_check_seconds=60) as client:
        services = services_of(client)
        with services.db.write() as conn:
            rows = [{"name": n, "created_at": 0.0} for n in HIDDEN_BEFORE + HIDDEN_AFTER]
            conn.execute(insert(repositories), rows)
        yield Registry(client.app, client, services)  # type: ignore[arg-type]


def _push_alice(registry: Registry, token: str) -> bytes:
    client = registry.client
    client.headers["Authorization"] = f"Bearer {token}"
    try:
        manifest = b""
        for name in VISIBLE:
            manifest = image_manifest(client, name)
            assert put_manifest(client, name, "v1", manifest, OCI_MANIFEST).status_code == 201
        return manifest
    finally:
        del client.headers["Authorization"]


def _pages(registry: Registry, token: str, counter: StatementCounter, n: str | None) -> list[list[str]]:
    pages: list[list[str]] = []
    params = {"n": n} if n is not None else {}
    seen_links: list[str] = []
    while True:
        counter.count = counter.rows = 0
        response = registry.client.get(
            "/v2/_catalog", params=params, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        assert counter.count <= MAX_STATEMENTS, (counter.count, params)
        assert counter.rows <= MAX_NAMES_READ, (counter.rows, params)
        pages.append(response.json()["repositories"])
        link = response.headers.get("Link")
        if link is None:
            return pages
        seen_links.append(link)
        for hidden in HIDDEN_BEFORE + HIDDEN_AFTER:
            assert f"last={hidden.replace('/', '%2F')}" not in link, link
        query = parse_qs(urlparse(link.split(";")[0].strip("<>")).query)
        params = {key: values[0] for key, values in query.items()}
        # The cursor is a name already shown: nothing about the hidden names around it.
        assert params["last"] in [name for page in pages for name in page], link
        assert len(pages) < 20, seen_links


@pytest.mark.parametrize("n", [None, "0", "1", "2", "100", "1000", str((1 << 63) - 1)])
def test_catalog_work_is_bounded_for_a_caller_who_sees_few(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, n: str | None
) -> None:
    token = registry.token("alice", " ".join(f"repository:{r}:push,pull" for r in VISIBLE))
    _push_alice(registry, token)
    catalog_token = registry.token("alice", "registry:catalog:*")
    counter = StatementCounter(registry.services.db, monkeypatch)
    pages = _pages(registry, catalog_token, counter, n)
    if n == "0":
        assert pages == [[]]
        return
    listed = [name for page in pages for name in page]
    assert listed == VISIBLE
    page_size = min(int(n), listing.MAX_PAGE) if n else listing.CATALOG_DEFAULT_PAGE
    assert all(len(page) <= page_size for page in pages)


def test_catalog_for_an_administrator_is_one_bounded_read(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = registry.token("admin", "registry:catalog:*")
    registry.client.headers["Authorization"] = f"Bearer {token}"
    counter = StatementCounter(registry.services.db, monkeypatch)
    everything: list[str] = []
    url: str | None = "/v2/_catalog?n=1000"
    while url:
        counter.count = 0
        response = registry.client.get(url)
        assert counter.count <= MAX_STATEMENTS
        page = response.json()["repositories"]
        assert len(page) <= 1000
        everything += page
        link = response.headers.get("Link")
        url = link.split(";")[0].strip("<>") if link else None
    assert everything == sorted(HIDDEN_BEFORE + HIDDEN_AFTER)
    del registry.client.headers["Authorization"]


def test_tag_list_is_capped_per_request(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    token = registry.token("alice", "repository:alice/one:push,pull")
    registry.client.headers["Authorization"] = f"Bearer {token}"
    manifest = image_manifest(registry.client, "alice/one")
    put_manifest(registry.client, "alice/one", "v0", manifest, OCI_MANIFEST)
    with registry.services.db.write() as conn:
        repo_id = q.repository_id(conn, "alice/one")
        assert repo_id is not None
        manifest_id = q.manifest_by_digest(conn, repo_id, sha256(manifest))
        assert manifest_id is not None
        for i in range(1, listing.MAX_PAGE + 50):
            q.set_tag(conn, repo_id, f"v{i:05d}", manifest_id.id)
    counter = StatementCounter(registry.services.db, monkeypatch)
    tags: list[str] = []
    url: str | None = "/v2/alice/one/tags/list"
    requests = 0
    while url:
        counter.count = 0
        response = registry.client.get(url)
        requests += 1
        assert response.status_code == 200
        assert counter.count <= 3
        page = response.json()["tags"]
        assert len(page) <= listing.MAX_PAGE
        tags += page
        link = response.headers.get("Link")
        url = link.split(";")[0].strip("<>") if link else None
    assert requests == 2
    assert tags == sorted(tags) and len(tags) == listing.MAX_PAGE + 50
    del registry.client.headers["Authorization"]


@pytest.mark.timeout(60)  # a stalled loop must fail the test, not hang it
def test_a_flood_of_anonymous_requests_does_not_stall_a_pull(registry: Registry) -> None:
    """While anonymous clients hammer the catalog and tag lists, an authenticated pull completes."""
    token = registry.token("alice", " ".join(f"repository:{r}:push,pull" for r in VISIBLE))
    manifest = _push_alice(registry, token)
    anonymous = registry.token(None, "registry:catalog:*")
    # A pull the flood stalled would never finish while it lasts; the cap only bounds the test.
    cap_seconds = 60.0

    async def run() -> tuple[bool, int, int]:
        transport = httpx.ASGITransport(app=registry.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            deadline = time.monotonic() + cap_seconds
            pulled = asyncio.Event()
            under_way = asyncio.Event()
            sent = 0
            sent_during_pull = 0

            async def hammer(i: int) -> None:
                nonlocal sent
                bearer = {"Authorization": f"Bearer {anonymous}"}
                targets = [
                    ("/v2/_catalog?n=0", bearer),
                    ("/v2/_catalog?n=1", bearer),
                    ("/v2/_catalog?n=1000", bearer),
                    ("/v2/_catalog", {}),
                    (f"/v2/{VISIBLE[0]}/tags/list?n=1000", {}),
                    ("/v2/_catalog", bearer),
                ]
                while not pulled.is_set() and time.monotonic() < deadline:
                    path, headers = targets[i % len(targets)]
                    response = await client.get(path, headers=headers)
                    assert response.status_code in {200, 401}, response.text
                    sent += 1
                    if sent >= 48:
                        under_way.set()
                    # In process there is no socket to wait on: yield as a network round trip would.
                    await asyncio.sleep(0)

            async def pull() -> None:
                nonlocal sent_during_pull
                await under_way.wait()
                before = sent
                headers = {"Authorization": f"Bearer {token}", "Accept": OCI_MANIFEST}
                name = VISIBLE[-1]
                got = await client.get(f"/v2/{name}/manifests/v1", headers=headers)
                assert got.content == manifest
                for layer in json.loads(got.content)["layers"]:
                    blob = await client.get(f"/v2/{name}/blobs/{layer['digest']}", headers=headers)
                    assert blob.status_code == 200
                sent_during_pull = sent - before
                pulled.set()

            hammers = [asyncio.create_task(hammer(i)) for i in range(24)]
            await asyncio.wait_for(pull(), cap_seconds)
            await asyncio.gather(*hammers)
            return pulled.is_set(), sent, sent_during_pull

    pulled, sent, sent_during_pull = asyncio.run(run())
    # The pull finished while the flood was still running (requests kept arriving during it), not after
    # the flood drained.
    assert pulled and sent > 48
    assert sent_during_pull > 0
