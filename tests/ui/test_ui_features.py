"""The UI's newer features in-process: who pushed each tag, untagged manifests (listed, deleted alone), the
audit log's time range and repository filters, the scan-on-push default (UI and API), and the dashboard's
pushes, pulls and vulnerability snapshots, counted only over what the viewer may see."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from auth_support import ADMIN_PASSWORD, PASSWORD, World
from pages_support import SYSTEM, csrf_of, post_form, push_image, sign_in
from pydantic import ValidationError
from starlette.testclient import TestClient
from test_ui_query_counts import counted
from ui_support import tar_gz

from dockyard.config import Settings
from dockyard.content.activity import PullCounter, take_vulnerability_snapshot

ADMIN = ("admin", ADMIN_PASSWORD)
ADVISORY = {
    "id": "PYSEC-FEAT-0001",
    "summary": "urllib3: test advisory",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "urllib3"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.24.2"}]}],
        }
    ],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
}
SITE = "usr/lib/python3.11/site-packages/urllib3-1.24.1.dist-info/METADATA"


def _client(world: World, user: str) -> TestClient:
    client = TestClient(world.client.app, raise_server_exceptions=False)
    client.__enter__()
    return sign_in(client, user, ADMIN_PASSWORD if user == "admin" else PASSWORD)


def _tag_row(html: str, tag: str) -> str:
    match = re.search(rf'<tr data-tag="{re.escape(tag)}">(.*?)</tr>', html, re.S)
    assert match, f"no row for tag {tag}"
    return match.group(1)


def _pushed_by(html: str, tag: str) -> str:
    match = re.search(r'<td class="pushed-by">([^<]*)</td>', _tag_row(html, tag))
    assert match
    return match.group(1)


def test_each_tag_shows_who_pushed_it_last(world: World) -> None:
    push_image(world.client, "acme/private", "v1", ("rw", PASSWORD))
    push_image(world.client, "acme/private", "v2", ADMIN)
    reader = _client(world, "ro")
    page = reader.get("/repositories/acme/private").text
    assert _pushed_by(page, "v1") == "rw" and _pushed_by(page, "v2") == "admin"
    # Moving a tag records the new pusher; the sibling keeps its own.
    push_image(world.client, "acme/private", "v1", ADMIN, seed="other")
    page = reader.get("/repositories/acme/private").text
    assert _pushed_by(page, "v1") == "admin" and _pushed_by(page, "v2") == "admin"
    # With a registry token, as docker and skopeo push: the token's subject is recorded.
    token = world.token("rw", "repository:acme/public:pull,push")
    push_image(world.client, "acme/public", "t", _Bearer(token))  # type: ignore[arg-type]
    assert _pushed_by(reader.get("/repositories/acme/public").text, "t") == "rw"
    # The API's tag listing says it too.
    listed = world.client.get("/api/v1/repositories/acme/private/tags", auth=("ro", PASSWORD))
    assert {t["name"]: t["pushed_by"] for t in listed.json()} == {"v1": "admin", "v2": "admin"}


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def test_untagged_manifests_are_listed_and_deleted_alone(world: World) -> None:
    old = push_image(world.client, "acme/private", "v1", ADMIN, seed="first")
    sibling = push_image(world.client, "acme/private", "keep", ADMIN, seed="sibling")
    kept = push_image(world.client, "acme/private", "v2", ADMIN, seed="kept-old")
    push_image(world.client, "acme/private", "v1", ADMIN, seed="second")  # v1 moves: `old` is untagged
    push_image(world.client, "acme/private", "v2", ADMIN, seed="kept-new")  # and so is `kept`
    writer = _client(world, "rw")
    untagged = writer.get("/repositories/acme/private", params={"tab": "untagged"})
    assert untagged.status_code == 200
    assert f'data-digest="{old}"' in untagged.text and f'data-digest="{kept}"' in untagged.text
    assert f'data-digest="{sibling}"' not in untagged.text
    assert 'aria-label="Delete manifest' in untagged.text
    # A reader sees the list, not the button, and may not post it.
    reader = _client(world, "ro")
    seen = reader.get("/repositories/acme/private", params={"tab": "untagged"}).text
    assert f'data-digest="{old}"' in seen and 'aria-label="Delete manifest' not in seen
    page = "/repositories/acme/private?tab=untagged"
    refused = post_form(reader, page, "/repositories/acme/private/-/delete-manifest", {"digest": old})
    assert refused.status_code == 403
    # A tagged manifest is refused with 409; a malformed digest with 400; nothing changes.
    for digest, status in ((sibling, 409), ("sha256:nothex", 400), ("", 400)):
        answer = post_form(writer, page, "/repositories/acme/private/-/delete-manifest", {"digest": digest})
        assert answer.status_code == status, digest
    deleted = post_form(writer, page, "/repositories/acme/private/-/delete-manifest", {"digest": old})
    assert deleted.status_code == 303 and "tab=untagged" in deleted.headers["location"]
    after = writer.get(page).text
    assert f'data-digest="{old}"' not in after and f'data-digest="{kept}"' in after
    tags = writer.get("/repositories/acme/private").text
    for tag in ("v1", "v2", "keep"):
        assert _tag_row(tags, tag)
    assert world.client.get(f"/v2/acme/private/manifests/{old}", auth=ADMIN).status_code == 404
    assert world.client.get(f"/v2/acme/private/manifests/{sibling}", auth=ADMIN).status_code == 200


def test_untagged_manifests_are_paged(world: World) -> None:
    pushed = [push_image(world.client, "alice/public", "moving", ADMIN, seed=f"s{i}") for i in range(53)]
    client = _client(world, "alice")
    first = client.get("/repositories/alice/public", params={"tab": "untagged"}).text
    listed = set(re.findall(r'data-digest="(sha256:[0-9a-f]+)"', first))
    assert len(listed) == 50
    cursor = re.search(r'rel="next" href="[^"]*after=(sha256%3A[0-9a-f]+)', first)
    assert cursor
    second = client.get(
        "/repositories/alice/public", params={"tab": "untagged", "after": cursor.group(1).replace("%3A", ":")}
    ).text
    rest = set(re.findall(r'data-digest="(sha256:[0-9a-f]+)"', second))
    assert listed | rest == set(pushed[:-1]) and not listed & rest


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_the_audit_log_filters_by_time_range_and_repository(world: World) -> None:
    audit = world.auth.audit
    audit.record("test.old", actor="alice", target="acme/public")
    time.sleep(1.1)
    middle = datetime.now(UTC)
    time.sleep(1.1)
    audit.record("test.new", actor="alice", target="acme/public:v1")
    audit.record("test.new", actor="alice", target="acme/publicity")
    audit.record("test.new", actor="alice", target="acme/public@sha256:" + "a" * 64)
    admin = _client(world, "admin")

    def actions(**params: str) -> list[str]:
        page = admin.get("/system/audit", params=params)
        assert page.status_code == 200, page.text
        return re.findall(r"<td>(test\.\w+)</td>", page.text)

    assert actions(action="test.old") == ["test.old"]
    assert actions(**{"from": _utc(middle)}).count("test.old") == 0
    assert actions(**{"from": _utc(middle)}).count("test.new") == 3
    assert actions(to=_utc(middle)) == ["test.old"]
    assert actions(**{"from": _utc(middle - timedelta(hours=1)), "to": _utc(middle)}) == ["test.old"]
    # Without seconds, as datetime-local sends by default.
    assert "test.old" in actions(to=(middle + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M"))
    # The repository's own events: itself, its tags and manifests, never a name that merely starts alike.
    page = admin.get("/system/audit", params={"repository": "acme/public", "actor": "alice"}).text
    assert page.count("<td>test.") == 3 and "acme/publicity" not in page
    # The filter is kept in the form.
    assert f'value="{_utc(middle)}"' in admin.get("/system/audit", params={"from": _utc(middle)}).text
    for bad in (
        {"from": "yesterday"},
        {"to": "2026-13-01T00:00"},
        {"from": "2026-12-01T10:00+02:00"},
        {"from": "2026-12-01T10:00", "to": "2026-12-01T09:00"},
        {"from": "9" * 40},
    ):
        refused = admin.get("/system/audit", params=bad)
        assert refused.status_code == 400, bad
        assert "Traceback" not in refused.text
    assert _client(world, "alice").get("/system/audit", params={"from": _utc(middle)}).status_code == 403


def test_the_scan_on_push_default_is_a_system_setting(world: World) -> None:
    admin = _client(world, "admin")
    assert "checked" in re.search(r'name="scan_on_push_default"[^>]*>', admin.get("/system").text).group(0)
    # The API reads and sets it (administrators only), and the UI shows the change.
    api = world.client
    assert api.get("/api/v1/system/settings", auth=ADMIN).json()["scan_on_push_default"] is True
    url = "/api/v1/system/settings"
    assert api.get(url, auth=("alice", PASSWORD)).status_code == 403
    assert api.put(url, json={"scan_on_push_default": False}, auth=("alice", PASSWORD)).status_code == 403
    for hostile in ({"scan_on_push_default": "no"}, {"other": 1}, {"scan_on_push_default": [True]}):
        assert api.put(url, json=hostile, auth=ADMIN).status_code == 422, hostile
    assert api.put(url, content=b"{not json", auth=ADMIN).status_code == 422
    changed = api.put(url, json={"scan_on_push_default": False}, auth=ADMIN)
    assert changed.status_code == 200 and changed.json()["scan_on_push_default"] is False
    assert changed.json()["updated_by"] == "admin"
    system = admin.get("/system").text
    assert "checked" not in re.search(r'name="scan_on_push_default"[^>]*>', system).group(0)
    repositories = world.auth.repositories
    # Every way a repository is made honours it: the UI's form, a push that creates, the API.
    made = post_form(admin, "/new-repository", "/new-repository", {"namespace": "alice", "name": "from-ui"})
    assert made.status_code == 303
    push_image(world.client, "alice/from-push", "v1", ("alice", PASSWORD))
    created = api.post("/api/v1/repositories", json={"name": "alice/from-api"}, auth=ADMIN)
    assert created.status_code == 201 and created.json()["scan_on_push"] is False
    for name in ("alice/from-ui", "alice/from-push"):
        assert repositories.repository(SYSTEM, name).scan_on_push is False, name
    # The creator's own word wins.
    said = api.post("/api/v1/repositories", json={"name": "alice/said", "scan_on_push": True}, auth=ADMIN)
    assert said.json()["scan_on_push"] is True
    # Back on through the page (a form without the box checked turns it off, with it on).
    token = csrf_of(admin.get("/system").text)
    turned = admin.post(
        "/system/settings", data={"csrf_token": token, "scan_on_push_default": "on"}, follow_redirects=False
    )
    assert turned.status_code == 303
    assert api.get("/api/v1/system/settings", auth=ADMIN).json()["scan_on_push_default"] is True
    assert repositories.create(SYSTEM, "alice/later").scan_on_push is True
    assert admin.post("/system/settings", data={"scan_on_push_default": "on"}).status_code == 403
    outsider = _client(world, "outsider")
    refused = outsider.post("/system/settings", data={"csrf_token": csrf_of(outsider.get("/").text)})
    assert refused.status_code == 403
    events = api.get("/api/v1/audit", params={"action": "system.settings"}, auth=ADMIN)
    assert events.status_code == 200 and len(events.json()) >= 2


def _chart(html: str, title: str) -> dict[str, int]:
    """The counts of a column chart, by day label."""
    svg = re.search(rf"<title id=\"[^\"]*\">{title}</title>(.*?)</svg>", html, re.S)
    assert svg, title
    return {day: int(count) for day, count in re.findall(r"<title>(\d\d-\d\d): (\d+)</title>", svg.group(1))}


def _pull(world: World, repo: str, reference: str, times: int, method: str = "GET") -> None:
    for _ in range(times):
        answer = world.client.request(method, f"/v2/{repo}/manifests/{reference}", auth=ADMIN)
        assert answer.status_code == 200


def test_the_dashboard_counts_pushes_and_pulls_as_they_happen(world: World) -> None:
    services = world.client.app.state.services
    push_image(world.client, "acme/private", "v1", ADMIN)
    push_image(world.client, "acme/private", "v2", ADMIN)
    push_image(world.client, "acme/public", "v1", ADMIN)
    _pull(world, "acme/private", "v1", 4)
    _pull(world, "acme/public", "v1", 3)
    _pull(world, "acme/public", "v1", 5, method="HEAD")  # a HEAD is no pull
    assert services.manifests.pulls.flush(services.db) == 7
    assert services.manifests.pulls.flush(services.db) == 0
    _pull(world, "acme/public", "v1", 1)
    services.manifests.pulls.flush(services.db)
    today = datetime.now(UTC).strftime("%m-%d")
    admin = _client(world, "admin").get("/dashboard").text
    assert _chart(admin, "Pushes per day")[today] == 3
    assert _chart(admin, "Pulls per day")[today] == 8
    # The outsider's charts count the public repository alone; a member's count the private one too.
    outsider = _client(world, "outsider").get("/dashboard").text
    assert _chart(outsider, "Pushes per day")[today] == 1
    assert _chart(outsider, "Pulls per day")[today] == 4
    assert "acme/private" not in outsider
    reader = _client(world, "ro").get("/dashboard").text
    assert _chart(reader, "Pulls per day")[today] == 8
    # A deleted repository's pending pulls are dropped at the flush, not an error.
    _pull(world, "acme/public", "v1", 2)
    world.auth.repositories.delete(SYSTEM, "acme/public")
    assert services.manifests.pulls.flush(services.db) == 2
    assert _chart(_client(world, "admin").get("/dashboard").text, "Pulls per day")[today] == 4


def test_pull_counts_from_two_replicas_add_up(world: World) -> None:
    services = world.client.app.state.services
    first, second = PullCounter(), PullCounter()
    for _ in range(3):
        first.pulled("acme/public")
    second.pulled("acme/public")
    second.pulled("no/such-repository")
    first.flush(services.db)
    second.flush(services.db)
    today = datetime.now(UTC).strftime("%m-%d")
    assert _chart(_client(world, "admin").get("/dashboard").text, "Pulls per day")[today] == 4


def _push_vulnerable(world: World, repo: str, tag: str) -> None:
    layer = tar_gz({SITE: b"Metadata-Version: 2.1\nName: urllib3\nVersion: 1.24.1\n"})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()
    descriptors = []
    for data, media_type in (
        (config, "application/vnd.oci.image.config.v1+json"),
        (layer, "application/vnd.oci.image.layer.v1.tar+gzip"),
    ):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        answer = world.client.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, auth=ADMIN
        )
        assert answer.status_code == 201
        descriptors.append({"mediaType": media_type, "digest": digest, "size": len(data)})
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptors[0],
        "layers": descriptors[1:],
    }
    answer = world.client.put(
        f"/v2/{repo}/manifests/{tag}",
        content=json.dumps(manifest).encode(),
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        auth=ADMIN,
    )
    assert answer.status_code == 201


def _stacked(html: str) -> dict[str, int]:
    """The severity chart's counts, by "MM-DD severity"."""
    svg = re.search(r"<title id=\"[^\"]*\">Vulnerabilities per day</title>(.*?)</svg>", html, re.S)
    assert svg
    found = re.findall(r"<title>(\d\d-\d\d): (\d+) (\w+)</title>", svg.group(1))
    return {f"{day} {severity}": int(count) for day, count, severity in found}


def test_vulnerability_snapshots_chart_what_the_viewer_may_see(world: World) -> None:
    services = world.client.app.state.services
    services.vulndb_sync.import_upload(SYSTEM, io.BytesIO(json.dumps([ADVISORY]).encode()), "a.json", "PyPI")
    _push_vulnerable(world, "acme/private", "v1")
    _push_vulnerable(world, "acme/public", "v1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        views = [services.browser.tags(SYSTEM, repo).tags[0] for repo in ("acme/private", "acme/public")]
        if all(view.vulnerabilities for view in views):
            break
        time.sleep(0.2)
    assert all(view.vulnerabilities == {"CRITICAL": 1} for view in views), views
    # The tags tab shows the counts by severity.
    assert "1 critical" in _tag_row(_client(world, "ro").get("/repositories/acme/private").text, "v1")
    assert take_vulnerability_snapshot(services.db) == 2
    today = datetime.now(UTC).strftime("%m-%d")
    admin = _stacked(_client(world, "admin").get("/dashboard").text)
    outsider = _stacked(_client(world, "outsider").get("/dashboard").text)
    assert admin[f"{today} critical"] == 2 and outsider[f"{today} critical"] == 1
    # A later snapshot the same day replaces the earlier one.
    world.auth.repositories.delete(SYSTEM, "acme/private")
    assert take_vulnerability_snapshot(services.db) == 1
    assert _stacked(_client(world, "admin").get("/dashboard").text)[f"{today} critical"] == 1


def test_the_dashboard_costs_the_same_queries_for_few_and_many_active_repositories(world: World) -> None:
    services = world.client.app.state.services
    admin = services.auth.accounts.identity(services.auth.accounts.user("outsider").id)

    def cost() -> int:
        with counted(world) as statements:
            services.browser.dashboard(admin)
        return len(statements)

    push_image(world.client, "acme/public", "v1", ADMIN)
    few = cost()
    for index in range(30):
        services.auth.repositories.create(SYSTEM, f"acme/busy-{index:02d}", "public")
        push_image(world.client, f"acme/busy-{index:02d}", "v1", ADMIN)
        services.manifests.pulls.pulled(f"acme/busy-{index:02d}")
    services.manifests.pulls.flush(services.db)
    take_vulnerability_snapshot(services.db)
    assert cost() == few


@pytest.mark.parametrize("value", ["0", "-5"])
def test_the_statistics_intervals_must_be_positive(value: str) -> None:
    for name in ("activity_flush_seconds", "vulnerability_snapshot_interval_seconds"):
        with pytest.raises(ValidationError):
            Settings(**{name: value})
