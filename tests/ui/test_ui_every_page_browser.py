"""In Chromium, every page a person reaches, one by one: each control has an accessible name (as
Chromium's accessibility tree computes it, the name a screen reader says), Tab reaches every control in
turn with no positive tabindex reordering it, and a 360 px window needs no sideways scrolling of the page.
Signed in as an administrator (who sees the most controls), and anonymously."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from features_support import PASSWORD, admin_api, make_team, skopeo_push
from playwright.sync_api import Page, expect
from test_ui_browser_checks import ADVISORY, SITE
from ui_support import ADMIN_PASSWORD, Watched, live_server, shot, sign_in, write_image

from support import DockyardServer

REPO = "acme/kbd"
PUBLIC = "acme/kbd-public"
ADMIN = f"admin:{ADMIN_PASSWORD}"
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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardServer]:
    """This module's own registry: anonymous pulls allowed, so anonymous visitors have pages to see."""
    yield from live_server(tmp_path_factory, "ui-every-page", {"DOCKYARD_ANONYMOUS_PULL": "true"})


@pytest.fixture(scope="module")
def site(server: DockyardServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Organization acme with team devs (member `member`, read-write on both repositories); a private
    repository with a scanned, vulnerable image pushed with skopeo, an untagged manifest; a public one; an
    advisory imported. Returns the image page's path."""
    make_team(server, {REPO: "private", PUBLIC: "public"})
    with admin_api(server) as api:
        files = {"file": ("osv.json", json.dumps([ADVISORY]).encode(), "application/json")}
        api.post("/vulndb/imports", files=files, data={"source": "PyPI"}).raise_for_status()
        layouts = tmp_path_factory.mktemp("every-page")
        for seed, version in (("vulnerable", b"1.24.1"), ("older", b"1.24.0")):
            metadata = b"Metadata-Version: 2.1\nName: urllib3\nVersion: " + version + b"\n"
            write_image(layouts / seed, "latest", [({SITE: metadata}, "RUN pip install urllib3")])
        skopeo_push(server, layouts / "older", f"{REPO}:old", ADMIN)
        # Moving `old` leaves its first image untagged.
        for target in (f"{REPO}:latest", f"{REPO}:old", f"{PUBLIC}:latest"):
            skopeo_push(server, layouts / "vulnerable", target, ADMIN)
        digest = api.get(f"/repositories/{REPO}/tags").json()[0]["digest"]
    return {"image": f"/repositories/{REPO}/-/image/{digest}"}


def _wait_for_findings(page: Page, path: str, timeout: float = 90) -> None:
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


def _submit(page: Page, button: str) -> None:
    page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()


def _user_row(page: Page, name: str) -> list[str]:
    """The cells of the user's row in the users table: name, full name, administrator, active, created."""
    page.goto("/users")
    row = page.locator("#users tbody tr").filter(has=page.get_by_role("cell", name=name, exact=True))
    return row.locator("td").all_inner_texts()


def test_an_administrator_deactivates_promotes_and_resets_a_user_in_the_page(
    site: dict[str, str], viewers: Callable[[], Watched]
) -> None:
    member = viewers().page()
    sign_in(member, "member", PASSWORD)
    admin = viewers().page()
    sign_in(admin, "admin", ADMIN_PASSWORD)

    admin.goto("/users")
    admin.locator("#active-name").fill("member")
    admin.get_by_label("Active (may sign in)").uncheck()
    _submit(admin, "Set active")
    assert _user_row(admin, "member")[2:4] == ["no", "no"]
    # The member's open session: signed out, and told why; a page for members goes to the sign-in page.
    member.goto("/")
    expect(member.get_by_role("alert")).to_contain_text("This account is deactivated")
    expect(member.get_by_role("button", name="Sign out")).to_have_count(0)
    member.goto("/profile")
    expect(member).to_have_url(re.compile(r"/sign-in\?next=/profile"))
    expect(member.get_by_role("alert")).to_contain_text("This account is deactivated")
    shot(member, "deactivated-session")
    # Nobody else sees it.
    stranger = viewers().page()
    stranger.goto("/sign-in")
    expect(stranger.get_by_role("alert")).to_have_count(0)

    admin.goto("/users")
    admin.locator("#active-name").fill("member")
    admin.get_by_label("Active (may sign in)").check()
    _submit(admin, "Set active")
    # The session from before the deactivation stays ended: the member signs in anew.
    member.goto("/")
    expect(member.get_by_role("button", name="Sign out")).to_have_count(0)
    sign_in(member, "member", PASSWORD)
    expect(member.get_by_role("button", name="Sign out")).to_be_visible()
    expect(member.get_by_role("link", name="System")).to_have_count(0)

    admin.goto("/users")
    admin.locator("#admin-name").fill("member")
    admin.get_by_label("Administrator", exact=True).check()
    _submit(admin, "Set administrator")
    member.goto("/")
    expect(member.get_by_role("link", name="System")).to_be_visible()
    assert _user_row(admin, "member")[2:4] == ["yes", "yes"]
    admin.locator("#admin-name").fill("member")
    admin.get_by_label("Administrator", exact=True).uncheck()
    _submit(admin, "Set administrator")
    member.goto("/system")
    expect(member.locator("h1")).to_contain_text("Not allowed")

    admin.goto("/users")
    admin.locator("#reset-name").fill("member")
    admin.locator("#reset-password").fill("a-new-member-password")
    _submit(admin, "Reset password")
    # A reset signs the member out everywhere.
    member.goto("/")
    expect(member.get_by_role("button", name="Sign out")).to_have_count(0)
    again = viewers().page()
    again.goto("/sign-in")
    again.get_by_label("User name").fill("member")
    again.get_by_label("Password or personal access token").fill(PASSWORD)
    _submit(again, "Sign in")
    expect(again.get_by_role("alert")).to_be_visible()
    sign_in(again, "member", "a-new-member-password")
    expect(again.get_by_role("button", name="Sign out")).to_be_visible()


def test_copy_buttons_put_the_text_on_the_clipboard(
    site: dict[str, str], viewers: Callable[[], Watched]
) -> None:
    person = viewers()
    person.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = person.page()
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/repositories/{REPO}")
    pull = page.locator(".pull input").input_value()
    assert pull.startswith("docker pull ") and pull.endswith(REPO)
    page.get_by_role("button", name="Copy the pull command").click()
    expect(page.get_by_role("button", name="Copy the pull command")).to_have_text("Copied")
    expect(page.locator("#announce")).to_have_text("Copied the pull command")  # said by screen readers
    assert page.evaluate("navigator.clipboard.readText()") == pull
    digest = site["image"].rsplit("/", 1)[1]
    page.get_by_role("button", name="Copy the digest of latest").click()
    assert page.evaluate("navigator.clipboard.readText()") == digest
    # By keyboard too.
    page.get_by_role("button", name="Copy the pull command").focus()
    page.keyboard.press("Enter")
    assert page.evaluate("navigator.clipboard.readText()") == pull


def test_the_api_docs_work_with_no_internet(server: DockyardServer, viewers: Callable[[], Watched]) -> None:
    person = viewers()
    elsewhere: list[str] = []

    def offline(route: Any) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    person.context.route("**/*", offline)
    page = person.page()
    page.goto("/api/v1/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Dockyard management API")
    expect(page.locator(".opblock").first).to_be_visible()
    page.locator(".opblock-summary").first.click()
    expect(page.locator(".opblock-body").first).to_be_visible()
    shot(page, "api-docs")
    assert elsewhere == []


def test_people_change_their_own_full_name_and_password(
    site: dict[str, str], server: DockyardServer, viewers: Callable[[], Watched]
) -> None:
    with admin_api(server) as api:
        api.post("/users", json={"name": "pat", "password": "pat-password-1"}).raise_for_status()
    page = viewers().page()
    sign_in(page, "pat", "pat-password-1")
    page.goto("/profile")
    page.get_by_role("textbox", name="Full name").fill("Pat <b>Smith</b>")
    page.get_by_role("button", name="Save").first.click()
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    expect(page.get_by_role("textbox", name="Full name")).to_have_value("Pat <b>Smith</b>")

    def change(current: str, new: str, again: str) -> None:
        page.get_by_label("Current password").first.fill(current)
        page.get_by_label("New password", exact=True).fill(new)
        page.get_by_label("New password again").fill(again)
        _submit(page, "Change password")

    change("pat-password-1", "pat-password-2", "pat-password-3")
    expect(page.get_by_role("alert")).to_contain_text("differ")
    page.goto("/profile")
    change("not-my-password", "pat-password-2", "pat-password-2")
    expect(page.get_by_role("alert")).to_be_visible()
    page.goto("/profile")
    change("pat-password-1", "pat-password-2", "pat-password-2")
    expect(page.get_by_role("status")).to_contain_text("Password changed.")
    with httpx.Client(base_url=server.url, timeout=30) as anyone:
        assert anyone.get("/api/v1/me", auth=("pat", "pat-password-1")).status_code == 401
        assert (
            anyone.get("/api/v1/me", auth=("pat", "pat-password-2")).json()["full_name"] == "Pat <b>Smith</b>"
        )


def _listed(page: Page) -> list[str]:
    return page.locator("table.list tbody tr td:first-child").all_inner_texts()


def test_searching_filtering_and_sorting_repositories_in_the_page(
    site: dict[str, str], viewers: Callable[[], Watched]
) -> None:
    admin = viewers().page()
    sign_in(admin, "admin", ADMIN_PASSWORD)
    admin.get_by_role("searchbox", name="Search").fill("kbd")
    admin.keyboard.press("Enter")
    admin.wait_for_url(re.compile(r"\?q=kbd"))
    assert sorted(_listed(admin)) == [REPO, PUBLIC]
    admin.get_by_label("Visibility").select_option("private")
    admin.get_by_role("button", name="Apply").click()
    admin.wait_for_load_state()
    assert _listed(admin) == [REPO]
    expect(admin.get_by_role("searchbox", name="Search")).to_have_value("kbd")
    admin.get_by_label("Visibility").select_option("")
    admin.get_by_label("Namespace").select_option("acme")
    admin.get_by_label("Sort by").select_option("pushed")
    admin.get_by_role("button", name="Apply").click()
    admin.wait_for_load_state()
    # The public repository got the last push (site pushed it after the private one).
    assert _listed(admin) == [PUBLIC, REPO]
    expect(admin.locator("#count")).to_have_text("2 repositories")
    # Anonymous visitors (anonymous pulls are on here) find the public one only, and no trace of the other.
    anonymous = viewers().page()
    anonymous.goto("/?q=kbd")
    assert _listed(anonymous) == [PUBLIC]
    expect(anonymous.locator("#count")).to_have_text("1 repository")
    assert REPO + "<" not in anonymous.content() and f"{REPO}/" not in anonymous.content()
