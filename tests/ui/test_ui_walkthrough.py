"""The issue's scenario, as a person does it in Chromium: an administrator creates a user, an organization,
a team and a private repository and grants the team read-write; the member pushes with skopeo and sees the
tag, its layers, config and history; deletes one tag of two sharing a digest; creates, uses and revokes a
personal access token; signs out."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect
from ui_support import ADMIN_PASSWORD, Watched, shot, sign_in, write_image

from support import DockyardServer

MEMBER_PASSWORD = "member-password-1"


def push(server: DockyardServer, layout: Path, tag: str, user: str, password: str, target: str) -> None:
    """Copy the layout's image to the registry with skopeo, as `user`."""
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"{user}:{password}",
            f"oci:{layout}:{tag}",
            f"docker://{server.address}/{target}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def submit(page: Page, button: str) -> None:
    page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()


def test_admin_sets_up_a_team_and_the_member_pushes_and_browses(
    server: DockyardServer, viewers: Callable[[], Watched], tmp_path: Path
) -> None:
    admin = viewers().page()
    sign_in(admin, "admin", ADMIN_PASSWORD)
    shot(admin, "repositories-empty")

    admin.goto("/users")
    admin.get_by_label("User name").fill("member")
    admin.get_by_label("Full name").fill("Mia Member")
    admin.locator("#user-password").fill(MEMBER_PASSWORD)
    submit(admin, "Create user")
    expect(admin.locator("#users")).to_contain_text("Mia Member")
    shot(admin, "users")

    admin.goto("/organizations")
    shot(admin, "organizations")
    admin.get_by_label("Name", exact=True).fill("acme")
    admin.get_by_label("Owners (user names, comma separated)").fill("admin")
    submit(admin, "Create organization")
    expect(admin).to_have_url(re.compile(r"/organizations/acme"))
    admin.get_by_label("New team").fill("devs")
    submit(admin, "Create team")
    admin.locator("#member-devs").fill("member")
    submit(admin, "Change members of devs")
    expect(admin.locator("#team-devs")).to_contain_text("Members: member")
    shot(admin, "organization")

    admin.goto("/new-repository")
    admin.get_by_label("Namespace").select_option("acme")
    admin.get_by_label("Name", exact=True).fill("app")
    admin.get_by_label("Short description").fill("The app")
    shot(admin, "new-repository")
    submit(admin, "Create")
    expect(admin).to_have_url(re.compile(r"/repositories/acme/app"))
    expect(admin.locator("h1")).to_contain_text("private")
    admin.get_by_role("link", name="Permissions").click()
    admin.get_by_label("Team", exact=True).select_option("devs")
    admin.get_by_label("Level", exact=True).select_option("read-write")
    submit(admin, "Set grant")
    expect(admin.locator("table")).to_contain_text("read-write")

    layout = tmp_path / "layout"
    digest = write_image(
        layout,
        "v1",
        [
            ({"bin/app": b"#!/bin/sh\necho hi\n"}, "COPY app /bin/app"),
            ({"etc/app.conf": b"x=1\n"}, "RUN configure"),
        ],
        labels={"org.opencontainers.image.title": "app"},
        env=["PATH=/usr/bin", "MODE=production"],
    )
    push(server, layout, "v1", "member", MEMBER_PASSWORD, "acme/app:v1")
    push(server, layout, "v1", "member", MEMBER_PASSWORD, "acme/app:v1-alias")

    member = viewers().page()
    sign_in(member, "member", MEMBER_PASSWORD)
    expect(member.locator("table.list")).to_contain_text("acme/app")
    member.get_by_role("link", name="acme/app").click()
    tags = member.locator("table.tags tbody tr")
    expect(tags).to_have_count(2)
    expect(member.locator("tr[data-tag='v1']")).to_contain_text("image")
    expect(member.locator("tr[data-tag='v1']")).to_contain_text(digest[:19])
    expect(member.locator("tr[data-tag='v1'] td.platforms")).to_have_text("linux/amd64")
    expect(member.get_by_role("button", name="Copy the pull command")).to_be_visible()
    shot(member, "repository-tags")

    member.get_by_role("link", name="v1", exact=True).click()
    layers = member.locator("#layers tbody tr")
    expect(layers).to_have_count(2)
    expect(layers.nth(0)).to_contain_text("COPY app /bin/app")
    expect(layers.nth(1)).to_contain_text("RUN configure")
    expect(member.locator("#env")).to_contain_text("MODE=production")
    expect(member.locator("#labels")).to_contain_text("org.opencontainers.image.title")
    expect(member.locator("dl.facts").nth(1)).to_contain_text("linux/amd64")
    shot(member, "image")

    # Deleting one tag leaves its sibling on the same digest.
    member.goto("/repositories/acme/app")
    member.get_by_role("button", name="Delete tag v1-alias").click()
    member.wait_for_load_state()
    expect(member.locator("table.tags tbody tr")).to_have_count(1)
    expect(member.locator("tr[data-tag='v1']")).to_be_visible()

    # A personal access token: shown once, works for signing in, revoked with one click.
    member.goto("/profile")
    member.get_by_label("Name", exact=True).fill("laptop")
    member.locator("#token-password").fill(MEMBER_PASSWORD)
    submit(member, "Create token")
    secret = member.locator("#new-token").input_value()
    assert secret.startswith("dyp_")
    shot(member, "profile-token")
    member.goto("/profile")
    expect(member.locator("#new-token")).to_have_count(0)
    assert secret not in member.content()

    with_token = viewers().page()
    sign_in(with_token, "member", secret)
    with_token.goto("/profile")
    expect(with_token.locator("h1")).to_contain_text("member")
    member.goto("/profile")
    expect(member.locator("tr[data-token] td").nth(4)).to_have_text("just now")  # last used

    member.get_by_role("button", name="Revoke token laptop").click()
    member.wait_for_load_state()
    expect(member.locator("tr[data-token]")).to_contain_text("revoked")
    with_token.goto("/profile")
    expect(with_token).to_have_url(re.compile(r"/sign-in"))

    member.get_by_role("button", name="Sign out").click()
    expect(member.locator("main")).to_contain_text("You are signed out")
    member.goto("/profile")
    expect(member).to_have_url(re.compile(r"/sign-in\?next=/profile"))
    shot(member, "sign-in")
