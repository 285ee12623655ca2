"""Fixtures for the web UI tests: one live `dockyard serve` per module and one Chromium per session."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright
from ui_support import CHROMIUM, CHROMIUM_ARGS, Watched, live_server, watched

from support import DockyardServer

# The in-process tests reuse the access-control world (users of every level, organization acme).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "auth"))

from auth_support import _cheap_hashes, _clean_environment, make_world, world

__all__ = ["_cheap_hashes", "_clean_environment", "make_world", "world"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests drive real programs; skip them loudly only when Chromium is not installed."""
    if Path(CHROMIUM).exists():
        return
    missing = pytest.mark.skip(reason=f"{CHROMIUM} is missing: run scripts/install-test-deps as root")
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(missing)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardServer]:
    """A live registry with the web UI, its own data directory, admin password known."""
    yield from live_server(tmp_path_factory, "ui")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def viewers(browser: Browser, server: DockyardServer) -> Iterator[Callable[[], Watched]]:
    """Factory of fresh browser contexts (one per person) on the server; the test fails if any page in
    them had a JavaScript error, a console error or opened a dialog."""
    opened: list[Watched] = []

    def open_one() -> Watched:
        opened.append(watched(browser, server.url))
        return opened[-1]

    yield open_one
    for context in opened:
        context.context.close()
    problems = [p for c in opened for p in c.problems]
    dialogs = [d for c in opened for d in c.dialogs]
    assert problems == [], problems
    assert dialogs == [], dialogs
