"""In Chromium, every page a person reaches, one by one: each control has an accessible name (as
Chromium's accessibility tree computes it, the name a screen reader says), Tab reaches every control in
turn with no positive tabindex reordering it, and a 360 px window needs no sideways scrolling of the page.
Signed in as an administrator (who sees the most controls), and anonymously."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page
from ui_support import ADMIN_PASSWORD, Watched, shot, sign_in, write_image

from support import DockyardServer

REPO = "acme/kbd"
PUBLIC = "acme/kbd-public"
SITE = "usr/lib/python3.11/site-packages/urllib3-1.24.1.dist-info/METADATA"
ADVISORY = {
    "id": "PYSEC-KBD-0001",
    "summary": "urllib3: test advisory",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "urllib3"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.24.2"}]}],
        }
    ],
}
# Roles of things people operate; each needs a name to be told apart by a screen reader.
CONTROL_ROLES = frozenset(
    {
        "button", "checkbox", "combobox", "link", "listbox", "menuitem", "radio", "searchbox", "slider",
        "spinbutton", "switch", "tab", "textbox",
    }
)  # fmt: skip
# What Tab should stop at: every control shown (inside a closed <details> they are not), even one taken out of
# the tab order (tabindex=-1: a mouse-only action), and anything else put in it.
_FOCUSABLE = """
() => {
  const found = [...document.querySelectorAll(
    'a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select:not([disabled]),'
    + ' textarea:not([disabled]), summary, [tabindex]:not([tabindex="-1"])')]
    .filter(e => e.checkVisibility());
  found.forEach((e, i) => { e.dataset.kbd = String(i); });
  return found.map(e => ({
    id: e.dataset.kbd,
    what: `${e.tagName.toLowerCase()}[name=${e.name || ''}] ${(e.textContent || '').trim().slice(0, 40)}`,
    group: e.type === 'radio' ? `radio:${e.form ? e.form.action : ''}:${e.name}` : null,
  }));
}
"""


def _push_layout(client: httpx.Client, layout: Path, target: str) -> None:
    """Push an OCI layout's one image through /v2/ (monolithic uploads)."""
    repo, tag = target.split(":")
    index = json.loads((layout / "index.json").read_text())
    descriptor = index["manifests"][0]

    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()

    manifest = json.loads(blob(descriptor["digest"]))
    for item in [manifest["config"], *manifest["layers"]]:
        sent = client.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": item["digest"]}, content=blob(item["digest"])
        )
        assert sent.status_code == 201, sent.text
    put = client.put(
        f"/v2/{repo}/manifests/{tag}",
        content=blob(descriptor["digest"]),
        headers={"Content-Type": descriptor["mediaType"]},
    )
    assert put.status_code == 201, put.text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardServer]:
    """This module's own registry: anonymous pulls allowed, so anonymous visitors have pages to see."""
    base = tmp_path_factory.mktemp("kbd-server")
    env = {"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD, "DOCKYARD_ANONYMOUS_PULL": "true"}
    server = DockyardServer(base / "data", base / "serve.log", env=env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def site(server: DockyardServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An organization with a team, member and grant; a private repository with a scanned, vulnerable
    image, an untagged manifest and a README; a public one; a token; an advisory imported. Returns the
    image page's path."""
    auth = ("admin", ADMIN_PASSWORD)
    with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
        api = "/api/v1"
        client.post(f"{api}/users", json={"name": "member", "password": "member-password"}).raise_for_status()
        client.post(f"{api}/organizations", json={"name": "acme", "owners": ["admin"]}).raise_for_status()
        client.post(f"{api}/organizations/acme/teams", json={"name": "builders"}).raise_for_status()
        client.put(f"{api}/organizations/acme/teams/builders/members/member").raise_for_status()
        client.post(f"{api}/repositories", json={"name": REPO, "description": "keyboard"}).raise_for_status()
        client.post(f"{api}/repositories", json={"name": PUBLIC, "visibility": "public"}).raise_for_status()
        client.put(
            f"{api}/organizations/acme/teams/builders/repositories/{REPO}", json={"level": "read-write"}
        ).raise_for_status()
        files = {"file": ("osv.json", json.dumps([ADVISORY]).encode(), "application/json")}
        client.post(f"{api}/vulndb/imports", files=files, data={"source": "PyPI"}).raise_for_status()
        layouts = tmp_path_factory.mktemp("kbd")
        for tag, version in (("latest", b"1.24.1"), ("old", b"1.24.0")):
            metadata = b"Metadata-Version: 2.1\nName: urllib3\nVersion: " + version + b"\n"
            write_image(layouts / tag, tag, [({SITE: metadata}, "RUN pip install urllib3")])
            _push_layout(client, layouts / tag, f"{REPO}:{tag}")
        _push_layout(client, layouts / "latest", f"{PUBLIC}:latest")
        # Moving `old` leaves its first image untagged.
        _push_layout(client, layouts / "latest", f"{REPO}:old")
        digest = client.get(f"{api}/repositories/{REPO}/tags").json()[0]["digest"]
    yield {"image": f"/repositories/{REPO}/-/image/{digest}"}


def _wait_for_findings(page: Page, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    page.goto(path)
    while not page.locator("#findings").count() and time.monotonic() < deadline:
        time.sleep(1)
        page.goto(path)
    assert page.locator("#findings").count(), "the image was not scanned"


def _unnamed_controls(page: Page) -> list[str]:
    """Controls Chromium's accessibility tree gives no name."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes: list[dict[str, Any]] = cdp.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        cdp.detach()
    unnamed = []
    for node in nodes:
        role = node.get("role", {}).get("value")
        if node.get("ignored") or role not in CONTROL_ROLES:
            continue
        if not str(node.get("name", {}).get("value", "")).strip():
            unnamed.append(f"{role} (DOM node {node.get('backendDOMNodeId')})")
    return unnamed


def _unreached_by_tab(page: Page) -> list[str]:
    """Controls that pressing Tab from the top of the page, round to the top again, never focuses (a date
    and time field takes a Tab per part, so the round takes more Tabs than there are controls)."""
    expected: list[dict[str, Any]] = page.evaluate(_FOCUSABLE)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    reached: list[str] = []
    for _ in range(6 * len(expected) + 20):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement ? document.activeElement.dataset.kbd || '' : ''")
        if focused == "0" and "0" in reached:
            break
        if focused and focused not in reached:
            reached.append(focused)
    groups = {e["group"] for e in expected if e["id"] in reached and e["group"]}
    return [e["what"] for e in expected if e["id"] not in reached and e["group"] not in groups]


def _check(page: Page, path: str, shot_name: str, status: int = 200) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    response = page.goto(path)
    assert response is not None and response.status == status, path
    assert (
        page.evaluate(
            'document.querySelectorAll(\'[tabindex]:not([tabindex="0"]):not([tabindex="-1"])\').length'
        )
        == 0
    ), path
    assert _unnamed_controls(page) == [], path
    assert _unreached_by_tab(page) == [], path
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(path)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, (path, overflow)
    shot(page, shot_name)


ADMIN_PAGES = [
    ("/", "repositories"),
    ("/?q=kbd&sort=pushed", "repositories-searched"),
    ("/new-repository", "new-repository"),
    (f"/repositories/{REPO}", "repository-tags"),
    (f"/repositories/{REPO}?tab=untagged", "repository-untagged"),
    (f"/repositories/{REPO}?tab=permissions", "repository-permissions"),
    (f"/repositories/{REPO}?tab=settings", "repository-settings"),
    (f"/repositories/{REPO}?tab=activity", "repository-activity"),
    ("/profile", "profile"),
    ("/organizations", "organizations"),
    ("/organizations/acme", "organization"),
    ("/users", "users"),
    ("/dashboard", "dashboard"),
    ("/system", "system"),
    ("/system/audit", "audit"),
    ("/repositories/acme/no-such-thing", "not-found"),
]
ANONYMOUS_PAGES = [
    ("/", "anonymous-repositories"),
    ("/sign-in", "sign-in"),
    (f"/repositories/{PUBLIC}", "anonymous-repository"),
    ("/repositories/nothing/here", "anonymous-not-found"),
]


def test_every_page_by_keyboard_with_names_and_in_a_narrow_window(
    site: dict[str, str], viewers: Callable[[], Watched]
) -> None:
    anonymous = viewers().page()
    for path, name in ANONYMOUS_PAGES:
        _check(anonymous, path, f"kbd-{name}", 404 if "not-found" in name else 200)
    admin = viewers().page()
    sign_in(admin, "admin", ADMIN_PASSWORD)
    # A token to revoke on the profile page, a finding to hide on the image page.
    admin.goto("/profile")
    admin.locator("#token-name").fill("ci")
    admin.locator("#token-password").fill(ADMIN_PASSWORD)
    admin.get_by_role("button", name="Create token").click()
    admin.wait_for_load_state()
    _wait_for_findings(admin, site["image"])
    for path, name in [*ADMIN_PAGES, (site["image"], "image")]:
        _check(admin, path, f"kbd-{name}", 404 if "not-found" in name else 200)
