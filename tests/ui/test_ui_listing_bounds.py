"""The repository list's bounds: it counts at most MAX_COUNTED rows (then says "more than"), pages only
within them, and clamps page numbers; what it shows still follows the caller's visibility."""

from __future__ import annotations

import re

import pytest
from auth_support import PASSWORD, World
from pages_support import SYSTEM, sign_in
from starlette.testclient import TestClient

from dockyard.content import listing
from dockyard.db.listing import Filters


def test_the_count_stops_at_its_bound_and_pages_stay_within_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(12):
        world.auth.repositories.create(SYSTEM, f"alice/r{index:02d}", "public")
    monkeypatch.setattr(listing, "MAX_COUNTED", 5)
    service = world.client.app.state.services.listing
    alice = world.auth.accounts.identity(world.auth.accounts.user("alice").id)
    assert alice is not None
    found = service.numbered(alice, Filters(namespace="alice"), by_push=False, page=99, per_page=2)
    assert (found.total, found.more, found.pages, found.page) == (5, True, 3, 3)
    assert [row.name for row in found.items] == ["alice/r02", "alice/r03"]
    exact = service.numbered(alice, Filters(contains="r1"), by_push=False, page=1, per_page=25)
    assert (exact.total, exact.more) == (2, False)
    client = TestClient(world.client.app, raise_server_exceptions=False)
    with client:
        sign_in(client, "outsider", PASSWORD)
        page = client.get("/", params={"namespace": "alice"}).text
        assert re.search(r'id="count">more than 5 repositories', page)
        # The outsider's count holds public repositories only.
        hidden = client.get("/", params={"namespace": "alice", "visibility": "private"}).text
        assert 'id="count">0 repositories' in hidden and "alice/private" not in hidden
