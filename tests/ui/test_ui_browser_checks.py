"""In Chromium, page by page: what anonymous, outsider, read-only and administrator viewers see; hostile
content that must stay inert; a form posted from another site; keyboard use and a narrow window;
vulnerabilities of a pushed image, hidden and shown again. Every page visited must log no JavaScript or
console error and open no dialog (the `viewers` fixture checks)."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from ui_support import ADMIN_PASSWORD, Watched, shot, sign_in, write_image

from support import DockyardServer

PASSWORD = "browser-user-pw"
SECRET_REPO = "acme/secret-plans"
# Each payload would set window.__pwned (or open a dialog) if it ever ran.
HOSTILE = (
    '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
    "<svg onload=alert(3)></svg><iframe src=javascript:alert(4)></iframe>"
)
HOSTILE_README = (
    f"# Read me\n\n{HOSTILE}\n\n[link](javascript:alert(5))\n\n<a href=javascript:alert(6)>x</a>\n"
)
ADVISORY = {
    "id": "PYSEC-UI-0001",
    "aliases": ["CVE-2099-0001"],
    "summary": "urllib3: test advisory",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "urllib3"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.24.2"}]}],
        }
    ],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
}
SITE = "usr/lib/python3.11/site-packages/urllib3-1.24.1.dist-info/METADATA"


def _push(server: DockyardServer, layout: Path, target: str) -> None:
    subprocess.run(
        [
            "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", f"admin:{ADMIN_PASSWORD}",
            f"oci:{layout}:latest", f"docker://{server.address}/{target}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def world(server: DockyardServer, tmp_path_factory: pytest.TempPathFactory) -> DockyardServer:
    """Users, an organization with a read-only team, a private and a public repository, hostile text in
    every field people write, and an image with a vulnerable package (no advisory yet)."""
    api = httpx.Client(base_url=f"{server.url}/api/v1", auth=("admin", ADMIN_PASSWORD), timeout=30)
    for name in ("outsider", "reader"):
        api.post("/users", json={"name": name, "password": PASSWORD}).raise_for_status()
    api.post("/organizations", json={"name": "acme", "owners": ["admin"]}).raise_for_status()
    api.post("/organizations/acme/teams", json={"name": "readers"}).raise_for_status()
    api.put("/organizations/acme/teams/readers/members/reader").raise_for_status()
    api.post("/repositories", json={"name": SECRET_REPO, "description": "top secret"}).raise_for_status()
    api.post(
        "/repositories", json={"name": "acme/open", "visibility": "public", "description": HOSTILE}
    ).raise_for_status()
    api.put(
        f"/organizations/acme/teams/readers/repositories/{SECRET_REPO}", json={"level": "read-only"}
    ).raise_for_status()
    httpx.patch(
        f"{server.url}/api/v1/me", json={"full_name": HOSTILE}, auth=("reader", PASSWORD)
    ).raise_for_status()

    layout = tmp_path_factory.mktemp("layout")
    write_image(
        layout,
        "latest",
        [({SITE: b"Metadata-Version: 2.1\nName: urllib3\nVersion: 1.24.1\n"}, f"RUN pip install {HOSTILE}")],
        labels={"evil": HOSTILE, HOSTILE: "key"},
        env=[f"EVIL={HOSTILE}"],
    )
    _push(server, layout, "acme/open:latest")
    _push(server, layout, f"{SECRET_REPO}:latest")
    return server


@pytest.fixture
def as_user(world: DockyardServer, viewers: Callable[[], Watched]) -> Iterator[Callable[[str | None], Page]]:
    """A page signed in as the user (None: anonymous)."""

    def open_as(user: str | None) -> Page:
        page = viewers().page()
        if user is not None:
            sign_in(page, user, ADMIN_PASSWORD if user == "admin" else PASSWORD)
        return page

    yield open_as


def _no_private_name(page: Page) -> None:
    assert "secret-plans" not in page.content()


def test_what_each_viewer_sees(as_user: Callable[[str | None], Page]) -> None:
    anonymous = as_user(None)
    anonymous.goto("/")
    expect(anonymous.locator("#count")).to_have_text("0 repositories")
    _no_private_name(anonymous)
    shot(anonymous, "anonymous-repositories")
    response = anonymous.goto(f"/repositories/{SECRET_REPO}")
    assert response is not None and response.status == 404
    expect(anonymous.locator("h1")).to_have_text("Not found")
    shot(anonymous, "error-404")
    anonymous.goto("/profile")
    expect(anonymous).to_have_url(re.compile(r"/sign-in\?next=/profile"))

    outsider = as_user("outsider")
    outsider.goto("/")
    expect(outsider.locator("#count")).to_have_text("1 repository")
    _no_private_name(outsider)
    outsider.goto("/?q=secret")
    expect(outsider.locator("#count")).to_have_text("0 repositories")
    response = outsider.goto(f"/repositories/{SECRET_REPO}")
    assert response is not None and response.status == 404
    _no_private_name(outsider)
    outsider.goto("/dashboard")
    _no_private_name(outsider)
    outsider.goto("/users")
    expect(outsider.locator("h1")).to_have_text("Not allowed")
    shot(outsider, "error-403")

    reader = as_user("reader")
    reader.goto(f"/repositories/{SECRET_REPO}")
    expect(reader.locator("tr[data-tag='latest']")).to_be_visible()
    expect(reader.get_by_role("button", name="Delete tag latest")).to_have_count(0)
    expect(reader.get_by_role("link", name="Settings")).to_have_count(0)
    expect(reader.get_by_role("link", name="Permissions")).to_have_count(0)

    admin = as_user("admin")
    admin.goto(f"/repositories/{SECRET_REPO}")
    for tab in ("Permissions", "Settings", "Activity"):
        admin.get_by_role("link", name=tab).click()
        shot(admin, f"repository-{tab.lower()}")
    expect(admin.locator("table")).to_contain_text("repository.create")
    admin.goto("/dashboard")
    expect(admin.locator("svg.chart")).to_have_count(5)
    expect(admin.locator("main")).to_contain_text(SECRET_REPO)
    shot(admin, "dashboard")
    admin.goto("/system/audit?action=login")
    expect(admin.locator("#audit")).to_contain_text("login")
    shot(admin, "audit-log")


def _inert(page: Page) -> None:
    assert page.evaluate("window.__pwned") is None
    injected = "script:not([src]), main iframe, main svg, main img, a[href^='javascript']"
    assert page.locator(injected).count() == 0


def test_hostile_content_stays_text(as_user: Callable[[str | None], Page]) -> None:
    admin = as_user("admin")
    admin.goto("/repositories/acme/open?tab=settings")
    admin.get_by_label("README (Markdown)").fill(HOSTILE_README)
    admin.get_by_role("button", name="Save README").click()
    admin.wait_for_load_state()
    for path in ("/", "/?q=open", "/repositories/acme/open", "/users", "/organizations/acme"):
        admin.goto(path)
        _inert(admin)
    admin.goto("/repositories/acme/open")
    expect(admin.locator(".lead")).to_contain_text("<script>window.__pwned=1</script>")
    expect(admin.locator("article.readme h1")).to_have_text("Read me")
    admin.get_by_role("link", name="latest", exact=True).click()
    _inert(admin)
    expect(admin.locator("#env")).to_contain_text("EVIL=<script>")
    expect(admin.locator("#labels")).to_contain_text("<svg onload=alert(3)>")
    expect(admin.locator("#layers")).to_contain_text("RUN pip install <script>")
    reader = as_user("reader")
    reader.goto("/profile")
    _inert(reader)
    expect(reader.locator("#full-name")).to_contain_text("<iframe src=javascript:alert(4)>")


class _EvilSite(BaseHTTPRequestHandler):
    """Another origin whose page posts a form to Dockyard as soon as it loads."""

    target = ""

    def do_GET(self) -> None:
        body = (
            "<!doctype html><title>win a prize</title>"
            f'<form id="f" method="post" action="{self.target}/profile/token">'
            '<input name="name" value="stolen"></form><script>document.getElementById("f").submit()</script>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return


def test_a_form_posted_from_another_site_is_refused(
    world: DockyardServer, as_user: Callable[[str | None], Page], viewers: Callable[[], Watched]
) -> None:
    victim = as_user("outsider")
    handler = type("Evil", (_EvilSite,), {"target": world.url})
    evil = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=evil.serve_forever, daemon=True)
    thread.start()
    try:
        attacked = victim.context.new_page()  # same signed-in browser, not watched: the 403 is expected
        response_codes: list[int] = []
        attacked.on(
            "response", lambda r: response_codes.append(r.status) if "/profile/token" in r.url else None
        )
        attacked.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
        attacked.wait_for_url(re.compile(r"/profile/token"))
        assert response_codes == [403]
        attacked.close()
    finally:
        evil.shutdown()
        evil.server_close()
    victim.goto("/profile")
    expect(victim.locator("#tokens")).to_have_count(0)
    assert "stolen" not in victim.content()


def test_keyboard_and_a_narrow_window(world: DockyardServer, viewers: Callable[[], Watched]) -> None:
    page = viewers().page()
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto("/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="⚓ Dockyard")).to_be_focused()
    page.goto("/sign-in")
    expect(page.get_by_label("User name")).to_be_focused()  # autofocus: type at once
    page.keyboard.type("admin")
    page.keyboard.press("Tab")
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{world.url}/")
    for path, name in (("/", "narrow-repositories"), (f"/repositories/{SECRET_REPO}", "narrow-repository")):
        page.goto(path)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (path, overflow)
        shot(page, name)
    # Every control on the main pages has a label (or an accessible name).
    for path in ("/", "/profile", "/users", "/organizations", f"/repositories/{SECRET_REPO}?tab=settings"):
        page.goto(path)
        unlabelled = page.evaluate(
            """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                 .map(e => e.name)"""
        )
        assert unlabelled == [], (path, unlabelled)


def _wait_for_scan(page: Page, path: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        page.goto(path)
        if page.locator("#findings").count() or time.monotonic() > deadline:
            return
        time.sleep(1)


def test_vulnerabilities_imported_through_the_page_then_hidden_and_shown_again(
    as_user: Callable[[str | None], Page], tmp_path: Path
) -> None:
    admin = as_user("admin")
    feed = tmp_path / "pypi-advisories.json"
    feed.write_text(json.dumps([ADVISORY]))
    admin.goto("/system")
    admin.get_by_label("OSV file").set_input_files(str(feed))
    admin.get_by_label("Source name (optional)").fill("PyPI")
    admin.get_by_role("button", name="Import").click()
    expect(admin.locator("main")).to_contain_text("Imported 1 records into PyPI")
    expect(admin.locator("#vulndb-sources")).to_contain_text("PyPI")
    shot(admin, "system")
    # The image was scanned on push, before the advisory existed: the import re-evaluates it.
    admin.goto(f"/repositories/{SECRET_REPO}")
    admin.get_by_role("link", name="latest", exact=True).click()
    image_path = admin.url.removeprefix(admin.url.split("/repositories/")[0])
    _wait_for_scan(admin, image_path)
    findings = admin.locator("#findings tbody tr")
    expect(findings).to_have_count(1)
    expect(findings).to_contain_text("PYSEC-UI-0001")
    expect(findings).to_contain_text("1.24.2")
    expect(findings.get_by_role("link", name="PYSEC-UI-0001")).to_have_attribute(
        "href", "https://osv.dev/vulnerability/PYSEC-UI-0001"
    )
    expect(admin.locator("details summary")).to_contain_text("1 finding")
    shot(admin, "image-vulnerabilities")
    admin.get_by_label("Reason to hide PYSEC-UI-0001 in urllib3").fill("not reachable in our use")
    admin.get_by_role("button", name="Hide").click()
    admin.wait_for_load_state()
    expect(admin.locator("#findings")).to_contain_text("hidden by admin: not reachable in our use")
    admin.goto(f"/repositories/{SECRET_REPO}")
    expect(admin.locator("tr[data-tag='latest']")).to_contain_text("none found")
    admin.goto(image_path)
    admin.get_by_role("button", name="Show PYSEC-UI-0001 in urllib3 again").click()
    admin.wait_for_load_state()
    expect(admin.locator("#findings")).not_to_contain_text("hidden by")
    with admin.expect_download() as download:
        admin.get_by_role("link", name="Download SBOM (CycloneDX)").click()
    sbom = json.loads(Path(download.value.path()).read_text())
    assert any(c.get("name") == "urllib3" for c in sbom["components"])
    admin.get_by_role("button", name="Scan now").click()
    expect(admin.locator("main")).to_contain_text("Scan queued.")

    reader = as_user("reader")
    reader.goto(image_path)
    expect(reader.locator("#findings")).to_contain_text("PYSEC-UI-0001")
    expect(reader.get_by_role("button", name="Hide")).to_have_count(0)
    expect(reader.get_by_role("button", name="Scan now")).to_have_count(0)
