"""Tags and repository names are listed in lexical (byte) order whatever the database's collation.

The OCI specification asks for lexical order, and `last` pagination relies on the same order. A PostgreSQL
created with a linguistic collation (en-US, the default on most installations) sorts "Z" after "a" and
ignores punctuation at first; the listing must not follow it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import update

from dockyard.auth.policy import BrowseScope
from dockyard.content.manifest_format import OCI_MANIFEST
from dockyard.content.manifests import ManifestService
from dockyard.db import content as q
from dockyard.db import listing
from dockyard.db.engine import Database
from dockyard.db.schema import repositories
from support import PostgresServer

TAGS = ["Z", "a", "b", "a-b", "ab", "a_b", "A", "v1.10", "v1.9", "v1-9", "_x", "0", "9"]
NAMES = ["ab", "a-b", "a/b", "a.b", "a_b", "a__b", "a/c", "b", "a0", "a--b", "z/a"]


def _collated_database(server: PostgresServer) -> str:
    name = f"dockyard_icu_{int(time.time() * 1000)}"
    with psycopg.connect(server.admin_conninfo, autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
            "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'".encode()
        )
    return server.url(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres-icu", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database: SQLite, or PostgreSQL with an en-US ICU collation."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'dockyard.db'}"
    else:
        url = _collated_database(request.getfixturevalue("postgres_server"))
    db = Database(url)
    db.migrate()
    try:
        yield db
    finally:
        db.close()


def _fill(db: Database) -> None:
    with db.write() as conn:
        repo_id = q.ensure_repository(conn, "order/test")
        manifest_id = q.insert_manifest(
            conn, repo_id, digest="sha256:" + "0" * 64, media_type=OCI_MANIFEST, content=b"{}",
            artifact_type=None, subject=None, blob_refs=(), manifest_refs=(),
        )  # fmt: skip
        for tag in TAGS:
            q.set_tag(conn, repo_id, tag, manifest_id)
        for name in NAMES:
            q.ensure_repository(conn, name)


def _pages(fetch: Callable[[str | None, int], list[str]], limit: int) -> list[str]:
    seen: list[str] = []
    last: str | None = None
    while True:
        page = fetch(last, limit)
        seen += page
        if len(page) < limit:
            return seen
        last = page[-1]


def test_tags_in_lexical_order(database: Database) -> None:
    _fill(database)
    service = ManifestService(database, 4 * 1024 * 1024)
    assert service.tags("order/test", None, 100) == sorted(TAGS)
    for limit in (1, 2, 5):
        assert _pages(lambda last, n: service.tags("order/test", last, n), limit) == sorted(TAGS)
    assert service.tags("order/test", "Z", 100) == [t for t in sorted(TAGS) if t > "Z"]


def test_catalog_in_lexical_order(database: Database) -> None:
    _fill(database)
    service = ManifestService(database, 4 * 1024 * 1024)
    everything = sorted([*NAMES, "order/test"])
    assert service.catalog(None, 100) == everything
    for limit in (1, 3):
        assert _pages(service.catalog, limit) == everything
    assert service.catalog("a/b", 100) == [n for n in everything if n > "a/b"]


def test_every_listing_of_tags_and_names_uses_the_same_order(database: Database) -> None:
    """The UI's tag pages, the API's and the lists that filter by visibility follow the same byte order."""
    _fill(database)
    with database.write() as conn:
        for name in NAMES:
            conn.execute(update(repositories).where(repositories.c.name == name).values(visibility="public"))
    with database.read() as conn:
        repo_id = q.repository_id(conn, "order/test")
        assert repo_id is not None

        def ui_tags(last: str | None, n: int) -> list[str]:
            return [row.name for row in listing.tags_page(conn, repo_id, last, n, with_content=True)]

        def api_tags(last: str | None, n: int) -> list[str]:
            return [row.name for row in listing.tags_page(conn, repo_id, last, n)]

        anyone = BrowseScope(everything=False, public=True, user_id=None)

        def names(last: str | None, n: int) -> list[str]:
            return listing.visible_names(conn, anyone, last, n)

        for limit in (1, 4):
            assert _pages(ui_tags, limit) == _pages(api_tags, limit) == sorted(TAGS)
            assert _pages(names, limit) == sorted(NAMES)
        rows = listing.repositories_page(conn, anyone, listing.Filters(), by_push=False, limit=None)
        assert [row.name for row in rows] == sorted(NAMES)
