"""In Chromium: who pushed each tag (a team member's skopeo push), untagged manifests after a tag is pushed
again, deleted one at a time; the audit log's time range; the scan-on-push default honoured by a new
repository; an OSV file imported through the page with upload progress. Every page visited must log no
JavaScript or console error and open no dialog (the `viewers` fixture checks)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from features_support import PASSWORD, image, make_team, server, skopeo_push
from playwright.sync_api import Browser, Page, expect
from ui_support import ADMIN_PASSWORD, Watched, shot, sign_in

from support import DockyardServer

__all__ = ["server"]

APP = "acme/app"
ADVISORY = {
    "id": "PYSEC-FEAT-0002",
    "summary": "test advisory",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "nothing-installs-this"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}],
        }
    ],
}


@pytest.fixture(scope="module")
def pushed(server: DockyardServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    """acme/app, where the team member pushed v1 and keep, then v1 again (its first image is left
    untagged), and tmp twice (another untagged image)."""
    make_team(server, {APP: "private"})
    tmp = tmp_path_factory.mktemp("layouts")
    creds = f"member:{PASSWORD}"
    for seed, tag in (
        ("first", "v1"),
        ("keep", "keep"),
        ("second", "v1"),
        ("tmp-a", "tmp"),
        ("tmp-b", "tmp"),
    ):
        skopeo_push(server, image(tmp, seed), f"{APP}:{tag}", creds)


def _open(viewers: Callable[[], Watched], user: str) -> Page:
    page = viewers().page()
    sign_in(page, user, ADMIN_PASSWORD if user == "admin" else PASSWORD)
    return page


def test_tags_show_the_pusher_and_untagged_manifests_are_deleted_alone(
    pushed: None, viewers: Callable[[], Watched]
) -> None:
    member = _open(viewers, "member")
    member.goto(f"/repositories/{APP}")
    for tag in ("v1", "keep", "tmp"):
        expect(member.locator(f"tr[data-tag='{tag}'] td.pushed-by")).to_have_text("member")
    expect(member.get_by_role("columnheader", name="Pushed by")).to_be_visible()
    shot(member, "tags-pushed-by")
    member.get_by_role("link", name="Untagged", exact=True).click()
    rows = member.locator("table.untagged tbody tr")
    expect(rows).to_have_count(2)
    digests = [str(rows.nth(i).get_attribute("data-digest")) for i in range(2)]
    shot(member, "untagged-manifests")
    # Delete the first by keyboard: focus its button and press Enter.
    first = member.locator(f"tr[data-digest='{digests[0]}']").get_by_role(
        "button", name=re.compile("^Delete manifest")
    )
    first.focus()
    member.keyboard.press("Enter")
    member.wait_for_url(re.compile(r"tab=untagged"))
    expect(member.locator("main")).to_contain_text("Deleted.")
    expect(member.locator("table.untagged tbody tr")).to_have_count(1)
    expect(member.locator(f"tr[data-digest='{digests[1]}']")).to_be_visible()
    member.get_by_role("link", name="Tags", exact=True).click()
    for tag in ("v1", "keep", "tmp"):
        expect(member.locator(f"tr[data-tag='{tag}']")).to_be_visible()
    # The outsider sees none of it.
    outsider = _open(viewers, "outsider")
    response = outsider.goto(f"/repositories/{APP}?tab=untagged")
    assert response is not None and response.status == 404


def _local(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def test_the_audit_log_filters_by_time_range(pushed: None, viewers: Callable[[], Watched]) -> None:
    admin = _open(viewers, "admin")
    admin.goto("/system/audit")
    now = datetime.now(UTC)
    admin.get_by_label("Actor").fill("member")
    admin.get_by_label("Repository").fill(APP)
    admin.get_by_label("From (UTC)").fill(_local(now - timedelta(hours=1)))
    admin.get_by_label("To (UTC)").fill(_local(now + timedelta(minutes=5)))
    admin.get_by_role("button", name="Filter").click()
    expect(admin.locator("#audit")).to_contain_text("registry.push")
    expect(admin.get_by_label("Actor")).to_have_value("member")
    shot(admin, "audit-time-range")
    admin.get_by_label("From (UTC)").fill(_local(now + timedelta(hours=1)))
    admin.get_by_label("To (UTC)").fill(_local(now + timedelta(hours=2)))
    admin.get_by_role("button", name="Filter").click()
    expect(admin.locator("main")).to_contain_text("No events match.")
    admin.get_by_label("From (UTC)").fill(_local(now + timedelta(hours=3)))
    admin.get_by_role("button", name="Filter").click()
    expect(admin.locator("main")).to_contain_text("must come before")


def test_scan_on_push_default_and_an_import_with_progress(
    pushed: None, viewers: Callable[[], Watched], tmp_path: Path
) -> None:
    admin = _open(viewers, "admin")
    admin.goto("/system")
    box = admin.get_by_label(re.compile("New repositories scan images"))
    expect(box).to_be_checked()
    box.uncheck()
    admin.get_by_role("button", name="Save settings").click()
    expect(admin.locator("main")).to_contain_text("Saved.")
    expect(admin.get_by_label(re.compile("New repositories scan images"))).not_to_be_checked()
    # A repository made now does not scan on push, as the default says.
    admin.goto("/new-repository")
    admin.get_by_label("Namespace").select_option("admin")
    admin.get_by_label("Name", exact=True).fill("quiet")
    admin.get_by_role("button", name=re.compile("Create")).click()
    admin.wait_for_url(re.compile("/repositories/"))
    admin.goto("/repositories/admin/quiet?tab=settings")
    expect(admin.get_by_label("Scan images for vulnerabilities when pushed")).not_to_be_checked()
    admin.goto("/system")
    admin.get_by_label(re.compile("New repositories scan images")).check()
    admin.get_by_role("button", name="Save settings").click()
    expect(admin.get_by_label(re.compile("New repositories scan images"))).to_be_checked()

    # The import goes up with a progress bar (the shipped script), and the page stays /system.
    feed = tmp_path / "advisories.json"
    feed.write_text(json.dumps([ADVISORY] * 1))
    admin.get_by_label("OSV file").set_input_files(str(feed))
    admin.get_by_label("Source name (optional)").fill("Feature")
    admin.get_by_role("button", name="Import").click()
    expect(admin.locator("main")).to_contain_text("Imported 1 records into Feature")
    expect(admin.locator("#vulndb-progress")).to_be_visible()
    expect(admin.get_by_label("Upload", exact=True)).to_have_attribute("value", "100")
    expect(admin.locator("#vulndb-progress [role=status]")).to_have_text("Upload complete (imported).")
    assert "/system/vulndb" not in admin.url  # the script sent it; a plain form would have navigated
    shot(admin, "system-import-progress")
    # The page works on after the swap: a second import goes up the same way.
    admin.get_by_label("OSV file").set_input_files(str(feed))
    admin.get_by_label("Source name (optional)").fill("Again")
    admin.get_by_role("button", name="Import").click()
    expect(admin.locator("main")).to_contain_text("Imported 1 records into Again")
    expect(admin.locator("#vulndb-progress [role=status]")).to_have_text("Upload complete (imported).")


def test_the_import_form_works_without_script(
    pushed: None, browser: Browser, server: DockyardServer, tmp_path: Path
) -> None:
    context = browser.new_context(base_url=server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, "admin", ADMIN_PASSWORD)
        page.goto("/system")
        feed = tmp_path / "plain.json"
        feed.write_text(json.dumps([ADVISORY]))
        page.get_by_label("OSV file").set_input_files(str(feed))
        page.get_by_label("Source name (optional)").fill("Plain")
        page.get_by_role("button", name="Import").click()
        expect(page.locator("main")).to_contain_text("Imported 1 records into Plain")
        assert page.url.endswith("/system/vulndb")
        expect(page.locator("#vulndb-progress")).to_be_hidden()
    finally:
        context.close()
