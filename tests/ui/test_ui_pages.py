"""The UI in-process (Starlette's TestClient on the whole app): who sees what, CSRF, sign-in, throttling,
error pages, hostile content, session cookies. The browser tests cover the same surface in Chromium."""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser

import pytest
from auth_support import ADMIN_PASSWORD, PASSWORD, AppFactory, World
from pages_support import SYSTEM, csrf_of, post_form, push_image, sign_in
from starlette.testclient import TestClient

from dockyard.auth.errors import Forbidden
from dockyard.auth.identity import FreshPassword

PRIVATE = ("acme/private", "alice/private")


def _client(world: World, base_url: str = "http://testserver") -> TestClient:
    client = TestClient(world.client.app, base_url=base_url, raise_server_exceptions=False)
    client.__enter__()
    return client


@pytest.fixture
def visitor(world: World) -> TestClient:
    """A fresh client on the world's app (its own cookie jar)."""
    return _client(world)


def as_user(world: World, user: str) -> TestClient:
    return sign_in(_client(world), user, ADMIN_PASSWORD if user == "admin" else PASSWORD)


def test_anonymous_visitors_see_no_private_repository_anywhere(world: World, visitor: TestClient) -> None:
    home = visitor.get("/")
    assert home.status_code == 200
    assert "0 repositories" in home.text
    for query in ("", "?q=private", "?namespace=acme", "?visibility=private", "?sort=pushed"):
        page = visitor.get("/" + query).text
        assert not any(name in page for name in PRIVATE), query
    private = visitor.get("/repositories/acme/private")
    missing = visitor.get("/repositories/acme/no-such-thing")
    assert private.status_code == missing.status_code == 404
    # The same page whether it exists or not: the name is not even echoed.
    assert "acme/private" not in private.text
    assert private.text.replace("acme/private", "") == missing.text.replace("acme/no-such-thing", "")


def test_an_outsider_sees_public_repositories_only_in_lists_counts_and_search(world: World) -> None:
    client = as_user(world, "outsider")
    page = client.get("/").text
    assert "acme/public" in page and "alice/public" in page
    assert not any(name in page for name in PRIVATE)
    assert "2 repositories" in page
    searched = client.get("/", params={"q": "private"}).text
    assert "0 repositories" in searched
    assert client.get("/repositories/alice/private").status_code == 404
    assert client.get("/repositories/acme/private/-/image/sha256:" + "0" * 64).status_code == 404


def test_search_filters_sort_and_paging(world: World) -> None:
    for index in range(30):
        world.auth.repositories.create(SYSTEM, f"alice/repo-{index:02d}", "public")
    client = as_user(world, "alice")
    first = client.get("/", params={"q": "repo-"}).text
    assert "30 repositories" in first and "Page 1 of 2" in first
    second = client.get("/", params={"q": "repo-", "page": "2"}).text
    assert "alice/repo-29" in second and "alice/repo-00" not in second
    assert "alice/private" in client.get("/", params={"visibility": "private"}).text
    assert "acme/public" not in client.get("/", params={"namespace": "alice"}).text
    push_image(client, "alice/repo-07", "latest", ("admin", ADMIN_PASSWORD))
    by_push = client.get("/", params={"sort": "pushed", "namespace": "alice"}).text
    assert by_push.index("alice/repo-07") < by_push.index("alice/repo-00")
    assert client.get("/", params={"sort": "nonsense"}).status_code == 400
    assert client.get("/", params={"q": "x" * 500}).status_code == 400


def test_each_level_sees_the_controls_the_policy_allows(world: World) -> None:
    push_image(world.client, "acme/private", "v1", ("admin", ADMIN_PASSWORD))
    seen = {}
    for user in ("ro", "rw", "adm", "admin"):
        page = as_user(world, user).get("/repositories/acme/private").text
        seen[user] = (
            "Delete tag v1" in page,
            "?tab=settings" in page,
            "?tab=permissions" in page,
            "?tab=activity" in page,
        )
    assert seen["ro"] == (False, False, False, False)
    assert seen["rw"] == (True, False, False, False)
    assert seen["adm"] == (True, True, True, True)
    assert seen["admin"] == (True, True, True, True)


def test_what_the_page_hides_the_server_refuses(world: World) -> None:
    push_image(world.client, "acme/private", "v1", ("admin", ADMIN_PASSWORD))
    reader = as_user(world, "ro")
    page = "/repositories/acme/private"
    for action, data in (
        ("delete-tag", {"tag": "v1"}),
        ("settings", {"visibility": "public", "description": "mine"}),
        ("delete", {"confirm": "acme/private"}),
        ("grant", {"team": "readers", "level": "admin"}),
        ("readme", {"readme": "owned"}),
    ):
        response = post_form(reader, page, f"{page}/-/{action}", data)
        assert response.status_code == 403, (action, response.status_code)
        assert "Traceback" not in response.text
    assert "v1" in reader.get(page).text
    assert world.auth.repositories.repository(SYSTEM, "acme/private").visibility == "private"


def test_deleting_a_tag_keeps_the_siblings_sharing_its_digest(world: World) -> None:
    auth = ("admin", ADMIN_PASSWORD)
    digest = push_image(world.client, "acme/private", "one", auth, seed="shared")
    assert push_image(world.client, "acme/private", "one-again", auth, seed="shared") == digest
    push_image(world.client, "acme/private", "two", auth)
    writer = as_user(world, "rw")
    page = "/repositories/acme/private"
    assert post_form(writer, page, f"{page}/-/delete-tag", {"tag": "one"}).status_code == 303
    text = writer.get(page).text
    assert 'data-tag="one"' not in text
    assert 'data-tag="two"' in text and 'data-tag="one-again"' in text
    assert writer.get(f"{page}/-/image/{digest}").status_code == 200
    assert post_form(writer, page, f"{page}/-/delete-tag", {"tag": "../two"}).status_code == 400
    assert post_form(writer, page, f"{page}/-/delete-tag", {"tag": "gone"}).status_code == 404


def test_forms_without_the_csrf_token_or_from_another_origin_are_refused(world: World) -> None:
    client = as_user(world, "alice")
    token = csrf_of(client.get("/profile").text)
    attempts = [
        ({"name": "t1"}, {}),
        ({"name": "t2", "csrf_token": "wrong"}, {}),
        ({"name": "t3", "csrf_token": token}, {"Origin": "http://evil.example"}),
        ({"name": "t4", "csrf_token": token}, {"Origin": "null"}),
    ]
    for data, headers in attempts:
        response = client.post("/profile/token", data=data, headers=headers, follow_redirects=False)
        assert response.status_code == 403, data
    assert "dyp_" not in client.get("/profile").text
    created = client.post(
        "/profile/token", data={"name": "ok", "csrf_token": token, "current_password": PASSWORD}
    )
    assert created.status_code == 201 and "dyp_" in created.text
    alice = world.auth.accounts.identity(world.auth.accounts.user("alice").id)
    assert alice is not None
    assert [t.name for t in world.auth.credentials.access_tokens(alice)] == ["ok"]


def test_the_sign_in_form_needs_its_own_token(world: World, visitor: TestClient) -> None:
    response = visitor.post(
        "/sign-in", data={"username": "alice", "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 403
    token = csrf_of(visitor.get("/sign-in").text)
    fresh = _client(world)  # has no sign-in cookie: a token copied from elsewhere is not enough
    stolen = fresh.post(
        "/sign-in",
        data={"username": "alice", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert stolen.status_code == 403


def test_sign_in_failures_are_throttled_and_never_say_which_part_was_wrong(
    world: World, visitor: TestClient
) -> None:
    statuses = []
    for _ in range(8):
        token = csrf_of(visitor.get("/sign-in").text)
        response = visitor.post(
            "/sign-in", data={"username": "alice", "password": "wrong", "csrf_token": token}
        )
        statuses.append(response.status_code)
        assert "Traceback" not in response.text
    assert statuses[0] == 401 and 429 in statuses
    token = csrf_of(visitor.get("/sign-in").text)
    unknown = visitor.post("/sign-in", data={"username": "nobody", "password": "x", "csrf_token": token})
    assert "invalid username or password" in unknown.text


def test_next_after_sign_in_stays_on_this_site(world: World, visitor: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        token = csrf_of(visitor.get("/sign-in").text)
        response = visitor.post(
            "/sign-in",
            data={"username": "alice", "password": PASSWORD, "csrf_token": token, "next": target},
            follow_redirects=False,
        )
        assert response.headers["location"] == "/", target
        visitor.cookies.clear()


def test_session_cookie_flags(make_world: AppFactory) -> None:
    for external, secure in ((None, False), ("https://registry.example", True)):
        world = make_world(external_url=external)
        # Behind a TLS proxy: the browser speaks HTTPS, so it sends Secure cookies back.
        client = _client(world, "https://testserver" if secure else "http://testserver")
        token = csrf_of(client.get("/sign-in").text)
        response = client.post(
            "/sign-in",
            data={"username": "alice", "password": PASSWORD, "csrf_token": token},
            follow_redirects=False,
        )
        cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith("dockyard_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=43200" in cookie
        assert ("Secure" in cookie) is secure


def test_signing_out_ends_the_session_on_the_server(world: World) -> None:
    client = as_user(world, "alice")
    cookie = client.cookies.get("dockyard_session")
    assert post_form(client, "/profile", "/sign-out", {}).status_code == 303
    assert world.auth.credentials.session(cookie) is None
    replay = _client(world)
    replay.cookies.set("dockyard_session", cookie)
    assert replay.get("/profile", follow_redirects=False).headers["location"].startswith("/sign-in")


DEACTIVATED = "This account is deactivated"


def test_a_deactivated_users_session_says_so_to_its_holder_alone(world: World) -> None:
    alice = as_user(world, "alice")
    cookie = alice.cookies.get("dockyard_session")
    assert cookie is not None
    world.auth.accounts.set_active(SYSTEM, "alice", False)
    home = alice.get("/")
    assert home.status_code == 200 and DEACTIVATED in home.text
    assert "Sign out" not in home.text and "alice/private" not in home.text
    # A page for signed-in viewers sends to the sign-in page, which says why too.
    profile = alice.get("/profile")
    assert profile.url.path == "/sign-in" and DEACTIVATED in profile.text
    posted = post_form(alice, "/sign-in", "/profile/token", {"name": "t"})
    assert posted.status_code == 401 and DEACTIVATED in posted.text
    # The API refuses the session too, and says why to the holder.
    refused = alice.get("/api/v1/me")
    assert refused.status_code == 401 and "deactivated" in refused.text
    # No one else learns anything: a wrong secret on the same session id, another session's format,
    # garbage, no cookie.
    public_id, secret = cookie[4:20], cookie[21:]
    wrong = "dys_" + public_id + "_" + ("A" if secret[0] != "A" else "B") + secret[1:]
    for sent in (wrong, "dys_" + "0" * 16 + "_" + "A" * 43, "garbage", None):
        other = _client(world)
        if sent is not None:
            other.cookies.set("dockyard_session", sent)
        for path in ("/", "/sign-in"):
            page = other.get(path)
            assert page.status_code == 200 and DEACTIVATED not in page.text, (sent, path)
        assert "alice" not in other.get("/sign-in").text, sent
    # Signing in again with the right password says it as well; another account signs in as usual.
    token = csrf_of(alice.get("/sign-in").text)
    form = {"csrf_token": token, "username": "alice", "password": PASSWORD}
    again = alice.post("/sign-in", data=form, follow_redirects=False)
    assert again.status_code == 401 and "deactivated" in again.text
    outsider = sign_in(alice, "outsider", PASSWORD).get("/").text
    assert DEACTIVATED not in outsider and "Sign out" in outsider


def test_a_reactivated_user_signs_in_anew_and_a_reset_password_signs_out_everywhere(world: World) -> None:
    alice = as_user(world, "alice")
    world.auth.accounts.set_active(SYSTEM, "alice", False)
    assert DEACTIVATED in alice.get("/").text
    world.auth.accounts.set_active(SYSTEM, "alice", True)
    # The session from before the deactivation does not come back to life.
    home = alice.get("/").text
    assert "Sign out" not in home and DEACTIVATED not in home
    assert alice.get("/profile").url.path == "/sign-in"
    # An administrator's reset ends every session of the user; another user's session stays.
    alice, outsider = as_user(world, "alice"), as_user(world, "outsider")
    world.auth.accounts.set_password(SYSTEM, "alice", "a-reset-password-3")
    assert "Sign out" not in alice.get("/").text
    assert "Sign out" in outsider.get("/").text
    assert "Sign out" in sign_in(_client(world), "alice", "a-reset-password-3").get("/").text


def test_a_read_only_token_signs_in_to_a_read_only_session(world: World) -> None:
    alice = world.auth.accounts.identity(world.auth.accounts.user("alice").id)
    assert alice is not None
    fresh = FreshPassword(alice.user_id)
    _, secret = world.auth.credentials.create_access_token(alice, "ro", read_only=True, fresh=fresh)
    client = sign_in(_client(world), "alice", secret)
    page = "/repositories/alice/private"
    assert "?tab=settings" not in client.get(page).text
    assert post_form(client, page, f"{page}/-/settings", {"visibility": "public"}).status_code == 403
    assert post_form(client, "/profile", "/profile/token", {"name": "more"}).status_code == 403
    (token,) = world.auth.credentials.access_tokens(alice)
    world.auth.credentials.revoke_access_token(alice, token.public_id)
    assert client.get("/profile", follow_redirects=False).status_code == 303


class Elements(HTMLParser):
    """Every start tag of a fragment with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)"><svg onload=alert(3)>'


def test_hostile_text_is_shown_as_text(world: World) -> None:
    world.auth.repositories.update(SYSTEM, "acme/public", description=HOSTILE)
    world.auth.accounts.set_full_name(SYSTEM, "alice", HOSTILE)
    push_image(
        world.client,
        "acme/public",
        "evil",
        ("admin", ADMIN_PASSWORD),
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": [f"X={HOSTILE}"], "Labels": {HOSTILE: HOSTILE}, "Cmd": [HOSTILE]},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [{"created_by": HOSTILE}],
        },
    )
    admin = as_user(world, "admin")
    digest_page = admin.get("/repositories/acme/public").text
    digest = re.search(r"/-/image/(sha256:[0-9a-f]{64})", digest_page)
    assert digest
    pages = [
        digest_page,
        admin.get("/", params={"q": "acme"}).text,
        admin.get(f"/repositories/acme/public/-/image/{digest.group(1)}").text,
        admin.get("/users").text,
        as_user(world, "alice").get("/profile").text,
    ]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html and "<svg onload" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize(
    "readme",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=//evil.example></iframe>",
        '<div style="background:url(javascript:alert(1))">x</div>',
        "![x](https://evil.example/pixel.png)",
        '<form action="//evil.example"><button>go</button></form>',
    ],
)
def test_readme_markdown_is_rendered_without_anything_active(world: World, readme: str) -> None:
    admin = as_user(world, "admin")
    page = "/repositories/acme/public"
    source = f"# Title\n\nSome **bold** text.\n\n{readme}\n"
    assert post_form(admin, page, f"{page}/-/readme", {"readme": source}).status_code == 303
    html = admin.get(page).text
    article = html[html.index('<article class="readme"') : html.index("</article>")]
    assert "<h1>Title</h1>" in article and "<strong>bold</strong>" in article
    elements = Elements()
    elements.feed(article)
    tags = {tag for tag, _ in elements.found}
    assert tags <= {"article", "h1", "p", "strong", "a"}, (readme, tags)
    for tag, attributes in elements.found:
        for name, value in attributes:
            assert not name.startswith("on") and name != "style", (readme, tag, name)
            if name == "href":
                assert (value or "").startswith(("http://", "https://", "mailto:")), (readme, value)


def test_error_pages_are_styled_and_never_show_a_stack_trace(
    world: World, visitor: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = visitor.get("/no/such/page")
    assert missing.status_code == 404 and "Not found" in missing.text
    assert "/static/dockyard.css" in missing.text
    client = as_user(world, "outsider")
    forbidden = client.get("/users")
    assert forbidden.status_code == 403 and "Not allowed" in forbidden.text

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internals /etc/shadow")

    monkeypatch.setattr(world.client.app.state.services.listing, "numbered", broken)
    failed = client.get("/")
    assert failed.status_code == 500
    assert "Something went wrong" in failed.text
    assert "secret internals" not in failed.text and "Traceback" not in failed.text


def test_every_page_sends_the_security_headers(world: World) -> None:
    client = as_user(world, "admin")
    for path in ("/", "/sign-in", "/profile", "/users", "/organizations", "/repositories/acme/public"):
        response = client.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


def test_system_pages_are_for_administrators(world: World) -> None:
    for user in ("outsider", "adm", "owner"):
        client = as_user(world, user)
        for path in ("/system", "/system/audit"):
            assert client.get(path).status_code == 403, (user, path)
        assert post_form(client, "/profile", "/system/gc", {"mode": "run"}).status_code == 403
    admin = as_user(world, "admin")
    page = admin.get("/system").text
    assert "database</th><td>ok" in page and "blob store</th><td>ok" in page
    dry = post_form(admin, "/system", "/system/gc", {"mode": "dry-run"})
    assert dry.status_code == 200 and "Would remove 0 untagged manifests, 0 blobs" in dry.text


def _last_collection(client: TestClient) -> str:
    match = re.search(r'<p id="gc-last">(.*?)</p>', client.get("/system").text, re.S)
    assert match
    return match.group(1)


def test_the_system_page_shows_the_last_collection_whoever_ran_it(world: World) -> None:
    services = world.client.app.state.services
    admin = as_user(world, "admin")
    # The periodic collection runs as the app starts: wait for it, so it cannot land after the next one.
    deadline = time.monotonic() + 30
    while services.gc.last(SYSTEM) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "periodic" in _last_collection(admin)
    # A blob nothing refers to, old enough to go: the collection's result counts it.
    digest = push_image(world.client, "acme/public", "gone", ("admin", ADMIN_PASSWORD))
    world.client.delete(f"/v2/acme/public/manifests/{digest}", auth=("admin", ADMIN_PASSWORD))
    services.gc.grace_seconds = 0
    ran = post_form(admin, "/system", "/system/gc", {"mode": "run"})
    assert ran.status_code == 200 and "Removed 0 untagged manifests, 2 blobs" in ran.text
    last = _last_collection(admin)
    assert "run by admin" in last and "removed 0 untagged manifests, 2 blobs" in last
    # The periodic collection (no one asked) is the last one now; a dry run changes nothing.
    services.gc.run()
    post_form(admin, "/system", "/system/gc", {"mode": "dry-run"})
    last = _last_collection(admin)
    assert "periodic" in last and "run by" not in last and "removed 0 untagged manifests, 0 blobs" in last
    # Only for administrators, whatever the surface.
    with pytest.raises(Forbidden):
        services.gc.last(services.auth.accounts.identity(services.auth.accounts.user("adm").id))
    # The settings' "last changed" is about settings alone.
    assert services.system_settings.get(SYSTEM).updated_at is None


def test_advisories_uploaded_through_the_page(world: World) -> None:
    admin = as_user(world, "admin")
    feed = json.dumps([{"id": "PYSEC-T-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "x"}}]}])
    token = csrf_of(admin.get("/system").text)
    files = {"file": ("advisories.json", feed.encode(), "application/json")}
    refused = admin.post("/system/vulndb", files=files, data={"source": "PyPI"})
    assert refused.status_code == 403
    imported = admin.post("/system/vulndb", files=files, data={"source": "PyPI", "csrf_token": token})
    assert imported.status_code == 200 and "Imported 1 records into PyPI" in imported.text
    broken = admin.post(
        "/system/vulndb",
        files={"file": ("bad.json", b"{not json", "application/json")},
        data={"csrf_token": token},
    )
    assert broken.status_code == 422 and "not an OSV file" in broken.text
    outsider = as_user(world, "outsider")
    assert (
        outsider.post(
            "/system/vulndb", files=files, data={"csrf_token": csrf_of(outsider.get("/").text)}
        ).status_code
        == 403
    )


def test_the_audit_log_filters_and_pages(world: World) -> None:
    for _ in range(3):
        as_user(world, "alice")
    admin = as_user(world, "admin")
    logins = admin.get("/system/audit", params={"actor": "alice", "action": "login"}).text
    assert logins.count("<td>login</td>") == 3 and "<td>admin</td>" not in logins
    for index in range(60):
        world.auth.audit.record("test.event", actor="robot", target=f"t{index}")
    first = admin.get("/system/audit", params={"actor": "robot"}).text
    older = re.search(r'href="/system/audit\?([^"]+)">Older', first)
    assert older and first.count("<td>test.event</td>") == 50
    second = admin.get("/system/audit?" + older.group(1).replace("&amp;", "&")).text
    assert second.count("<td>test.event</td>") == 10 and ">t0<" in second


def test_repository_administrators_change_settings_and_delete_with_confirmation(world: World) -> None:
    admin = as_user(world, "adm")
    page = "/repositories/acme/private"
    saved = post_form(admin, page, f"{page}/-/settings", {"visibility": "public", "description": "now open"})
    assert saved.status_code == 303
    repo = world.auth.repositories.repository(SYSTEM, "acme/private")
    assert (repo.visibility, repo.description, repo.scan_on_push) == ("public", "now open", False)
    assert "acme/private" in as_user(world, "outsider").get("/").text
    wrong = post_form(admin, page, f"{page}/-/delete", {"confirm": "acme/privat"})
    assert wrong.status_code == 400 and world.auth.repositories.exists("acme/private")
    done = post_form(admin, page, f"{page}/-/delete", {"confirm": "acme/private"})
    assert done.status_code == 303 and not world.auth.repositories.exists("acme/private")
    events = admin.get("/repositories/acme/public?tab=activity").text
    assert "<td>acme/private</td>" not in events


def test_the_activity_tab_lists_the_repositorys_events_for_its_administrators(world: World) -> None:
    push_image(world.client, "acme/private", "v1", ("rw", PASSWORD))
    push_image(world.client, "acme/private", "v1", ("rw", PASSWORD), seed="moved")
    push_image(world.client, "acme/public", "other", ("admin", ADMIN_PASSWORD))
    page = as_user(world, "owner").get("/repositories/acme/private?tab=activity").text
    rows = re.findall(
        r"<tr><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", page
    )
    assert rows[:2] == [("rw", "registry.push", "acme/private:v1", "success")] * 2
    assert not any("acme/public" in target for _, _, target, _ in rows)
    # A writer is no administrator of it: no tab, and the tags tab instead of the events.
    writer = as_user(world, "rw").get("/repositories/acme/private?tab=activity").text
    assert "registry.push" not in writer and "?tab=activity" not in writer


def test_new_repository_offers_only_namespaces_where_the_viewer_may_create(world: World) -> None:
    def offered(user: str) -> set[str]:
        html = as_user(world, user).get("/new-repository").text
        select = html[html.index('<select id="namespace"') : html.index("</select>")]
        return set(re.findall(r'<option value="([^"]+)"', select))

    assert offered("alice") == {"alice"}
    assert offered("owner") == {"owner", "acme"}
    assert offered("rw") == {"rw"}  # grants on two repositories, not on the namespace
    world.auth.grants.set_namespace_grant(SYSTEM, "acme", "writers", "read-write")
    assert offered("rw") == {"rw", "acme"}
    assert offered("ro") == {"ro"}
    client = as_user(world, "ro")
    refused = post_form(client, "/new-repository", "/new-repository", {"namespace": "acme", "name": "x"})
    assert refused.status_code == 403 and not world.auth.repositories.exists("acme/x")
    made = post_form(client, "/new-repository", "/new-repository", {"namespace": "ro", "name": "tool"})
    assert made.status_code == 303 and made.headers["location"].startswith("/repositories/ro/tool")


def test_the_dashboard_counts_only_what_the_viewer_may_see(world: World) -> None:
    auth = ("admin", ADMIN_PASSWORD)
    push_image(world.client, "acme/private", "v1", auth)
    push_image(world.client, "alice/public", "v1", auth)
    outsider = as_user(world, "outsider").get("/dashboard")
    assert outsider.status_code == 200 and "<svg" in outsider.text
    assert "acme/private" not in outsider.text and "alice/public" in outsider.text
    assert "Over the 2 repositories" in outsider.text
    admin = as_user(world, "admin").get("/dashboard").text
    assert "acme/private" in admin and "Over the 4 repositories" in admin
    # The admin's two pushes of today, through /v2/, are in the last column.
    assert re.search(r"<title>\d\d-\d\d: 2</title>", admin)
    assert re.search(r"<title>\d\d-\d\d: 1</title>", outsider.text)
    # One namespace and one repository hold blobs among those the outsider sees; fourteen days of pushes
    # and of pulls; no findings, so the severity chart has its legend only.
    assert outsider.text.count("<rect") == 1 + 1 + 14 + 14 + 5


def test_behind_a_tls_proxy_the_external_origin_is_this_site(make_world: AppFactory) -> None:
    world = make_world(external_url="https://registry.example/")
    client = _client(world, "https://testserver")
    sign_in(client, "alice", PASSWORD)
    token = csrf_of(client.get("/profile").text)
    for origin, status in (
        ("https://registry.example", 201),
        ("https://testserver", 201),
        ("http://registry.example", 403),
        ("https://registry.example.evil", 403),
    ):
        response = client.post(
            "/profile/token",
            data={"name": f"t-{status}-{len(origin)}", "csrf_token": token, "current_password": PASSWORD},
            headers={"Origin": origin},
        )
        assert response.status_code == status, origin
