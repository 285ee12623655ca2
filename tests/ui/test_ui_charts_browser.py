"""In Chromium: the dashboard's push and pull charts count what real clients did (skopeo pushes, manifest
pulls over HTTP), collected by the running server as it happened; an outsider's charts leave out the private
repository's counts. A server of its own, so the counts are exactly this module's."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from features_support import PASSWORD, image, make_team, server, skopeo_push
from playwright.sync_api import Page, expect
from ui_support import ADMIN_PASSWORD, Watched, shot, sign_in

from support import DockyardServer

__all__ = ["server"]

PRIVATE, PUBLIC = "acme/hidden-stats", "acme/open-stats"


@pytest.fixture(scope="module")
def traffic(server: DockyardServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Three pushes to the private repository and one to the public one (by the team member), then five
    pulls of the private repository's manifest and two of the public one's, and HEADs that are no pulls."""
    make_team(server, {PRIVATE: "private", PUBLIC: "public"})
    tmp = tmp_path_factory.mktemp("layouts")
    creds = f"member:{PASSWORD}"
    for seed, target in (
        ("a", f"{PRIVATE}:a"),
        ("b", f"{PRIVATE}:b"),
        ("c", f"{PRIVATE}:c"),
        ("d", f"{PUBLIC}:d"),
    ):
        skopeo_push(server, image(tmp, seed), target, creds)
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    with httpx.Client(base_url=server.url, auth=("member", PASSWORD), headers=accept, timeout=30) as client:
        for repo, tag, pulls in ((PRIVATE, "a", 5), (PUBLIC, "d", 2)):
            for _ in range(pulls):
                client.get(f"/v2/{repo}/manifests/{tag}").raise_for_status()
            client.head(f"/v2/{repo}/manifests/{tag}").raise_for_status()


def _counts(page: Page, title: str) -> dict[str, int]:
    svg = page.locator("svg.chart", has=page.locator("title", has_text=re.compile(f"^{title}$")))
    found = re.findall(r"<title>(\d\d-\d\d): (\d+)</title>", svg.inner_html())
    return {day: int(count) for day, count in found}


def _today_on_dashboard(page: Page, title: str, expected: int, timeout: float = 20) -> int:
    """Today's count in a chart, reloading while the server's periodic flush catches up."""
    today = datetime.now(UTC).strftime("%m-%d")
    deadline = time.monotonic() + timeout
    while True:
        page.goto("/dashboard")
        found = _counts(page, title).get(today, -1)
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _open(viewers: Callable[[], Watched], user: str) -> Page:
    page = viewers().page()
    sign_in(page, user, ADMIN_PASSWORD if user == "admin" else PASSWORD)
    return page


def test_charts_count_the_pushes_and_pulls_made(traffic: None, viewers: Callable[[], Watched]) -> None:
    member = _open(viewers, "member")
    assert _today_on_dashboard(member, "Pulls per day", 7) == 7
    assert _today_on_dashboard(member, "Pushes per day", 4) == 4
    expect(member.get_by_role("heading", name="Vulnerabilities by severity per day")).to_be_visible()
    expect(member.get_by_role("img", name="Pulls per day")).to_be_visible()
    shot(member, "dashboard-activity")
    admin = _open(viewers, "admin")
    assert _today_on_dashboard(admin, "Pulls per day", 7) == 7


def test_an_outsider_never_counts_the_private_repository(
    traffic: None, viewers: Callable[[], Watched]
) -> None:
    outsider = _open(viewers, "outsider")
    assert _today_on_dashboard(outsider, "Pulls per day", 2) == 2
    assert _today_on_dashboard(outsider, "Pushes per day", 1) == 1
    assert "hidden-stats" not in outsider.content()
