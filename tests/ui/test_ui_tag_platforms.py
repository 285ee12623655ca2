"""The tags tab names each image's platform: recorded from the image's config when it is pushed (the page
stays one bounded query, no blob read per row), an index's from its list, nothing for an artifact; a config
that says something else than a platform name records nothing. Signatures and other referrers are counted
on the tags tab and grouped by artifact type on the image page; an index's page lists its platforms."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from auth_support import ADMIN_PASSWORD, World
from pages_support import push_image, sign_in
from sqlalchemy import update
from starlette.testclient import TestClient

from dockyard.content.platforms import platform_of_config
from dockyard.db.schema import manifests

ADMIN = ("admin", ADMIN_PASSWORD)
REPO = "acme/public"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.mark.parametrize(
    ("config", "platform"),
    [
        ({"os": "linux", "architecture": "amd64"}, "linux/amd64"),
        ({"os": "linux", "architecture": "arm", "variant": "v7"}, "linux/arm/v7"),
        ({"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.1"}, "windows/amd64"),
        ({"os": "linux", "architecture": "amd64", "variant": ""}, "linux/amd64"),
        ({"architecture": "amd64"}, None),
        ({"os": "linux"}, None),
        ({"os": "linux", "architecture": 64}, None),
        ({"os": "<script>alert(1)</script>", "architecture": "amd64"}, None),
        ({"os": "linux/../x", "architecture": "amd64"}, None),
        ({"os": "linux", "architecture": "a" * 21}, None),
        ({"os": "linux", "architecture": "amd64", "variant": ["v8"]}, None),
        ({"os": "linux", "architecture": "amd 64"}, None),
        ([], None),
    ],
)
def test_a_config_names_a_platform_or_nothing(config: Any, platform: str | None) -> None:
    assert platform_of_config(json.dumps(config).encode()) == platform


@pytest.mark.parametrize("data", [b"", b"{", b"\xff\xfe", b"null", b'"linux/amd64"'])
def test_a_config_that_is_not_json_names_nothing(data: bytes) -> None:
    assert platform_of_config(data) is None


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob(client: TestClient, data: bytes) -> dict[str, Any]:
    response = client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"digest": _digest(data)}, content=data, auth=ADMIN
    )
    assert response.status_code == 201, response.text
    return {"digest": _digest(data), "size": len(data)}


def _manifest(client: TestClient, reference: str, document: dict[str, Any], media_type: str) -> str:
    content = json.dumps(document).encode()
    response = client.put(
        f"/v2/{REPO}/manifests/{reference}", content=content, headers={"Content-Type": media_type}, auth=ADMIN
    )
    assert response.status_code == 201, response.text
    return _digest(content)


def _platform_cell(html: str, tag: str) -> str:
    row = re.search(rf'<tr data-tag="{re.escape(tag)}">(.*?)</tr>', html, re.S)
    assert row, f"no row for tag {tag}"
    cell = re.search(r'<td class="platforms">([^<]*)</td>', row.group(1))
    assert cell, row.group(1)
    return cell.group(1)


def _image_config(**platform: str) -> dict[str, Any]:
    return {**platform, "rootfs": {"type": "layers", "diff_ids": []}}


def test_the_tags_tab_shows_each_kinds_platforms(world: World) -> None:
    client = world.client
    push_image(client, REPO, "amd", ADMIN, config=_image_config(os="linux", architecture="amd64"))
    push_image(
        client, REPO, "arm", ADMIN, config=_image_config(os="linux", architecture="arm64", variant="v8")
    )
    hostile = _image_config(os="<b>linux</b>", architecture="amd64")
    push_image(client, REPO, "odd", ADMIN, config=hostile)
    # An index of the two images: the platforms its list names.
    children = []
    for tag, platform in (
        ("amd", {"os": "linux", "architecture": "amd64"}),
        ("arm", {"os": "linux", "architecture": "arm64", "variant": "v8"}),
    ):
        got = client.get(f"/v2/{REPO}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}, auth=ADMIN)
        children.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": _digest(got.content),
                "size": len(got.content),
                "platform": platform,
            }
        )
    _manifest(client, "multi", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}, OCI_INDEX)
    # An artifact: its config is no image config, so it has no platform even if the config says one.
    config = _blob(client, json.dumps({"os": "linux", "architecture": "amd64"}).encode())
    layer = _blob(client, b"an artifact's payload")
    artifact = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.thing",
        "config": {"mediaType": "application/vnd.example.config+json", **config},
        "layers": [{"mediaType": "application/octet-stream", **layer}],
    }
    _manifest(client, "thing", artifact, OCI_MANIFEST)

    html = (
        sign_in(TestClient(world.client.app).__enter__(), "admin", ADMIN_PASSWORD)
        .get(f"/repositories/{REPO}")
        .text
    )
    assert _platform_cell(html, "amd") == "linux/amd64"
    assert _platform_cell(html, "arm") == "linux/arm64/v8"
    assert _platform_cell(html, "odd") == "—"
    assert _platform_cell(html, "multi") == "linux/amd64, linux/arm64/v8"
    assert _platform_cell(html, "thing") == "—"
    # The API's tag listing names the recorded platform too (an index's and an artifact's: null).
    listed = client.get(f"/api/v1/repositories/{REPO}/tags", auth=ADMIN).json()
    assert {t["name"]: t["platform"] for t in listed} == {
        "amd": "linux/amd64",
        "arm": "linux/arm64/v8",
        "odd": None,
        "multi": None,
        "thing": None,
    }


def test_an_image_stored_before_platforms_were_recorded_gets_its_own_when_pushed_again(world: World) -> None:
    digest = push_image(world.client, REPO, "old", ADMIN)
    db = world.client.app.state.services.db
    with db.write() as conn:
        conn.execute(update(manifests).where(manifests.c.digest == digest).values(platform=None))
    admin = sign_in(TestClient(world.client.app).__enter__(), "admin", ADMIN_PASSWORD)
    assert _platform_cell(admin.get(f"/repositories/{REPO}").text, "old") == "—"
    assert push_image(world.client, REPO, "old", ADMIN) == digest
    assert _platform_cell(admin.get(f"/repositories/{REPO}").text, "old") == "linux/amd64"
    # The API's listing has it too; the manifest bytes the UI reads are not in it.
    listed = world.client.get(f"/api/v1/repositories/{REPO}/tags", auth=ADMIN).json()
    assert listed[0]["platform"] == "linux/amd64"
    assert set(listed[0]) == {
        "name",
        "digest",
        "media_type",
        "size",
        "artifact_type",
        "pushed_at",
        "pushed_by",
        "platform",
    }


def _referrer(client: TestClient, subject: str, artifact_type: str, payload: bytes, tag: str) -> str:
    """Push an artifact whose subject is `subject` (by a tag, as some clients do, or by digest)."""
    empty = _blob(client, b"{}")
    layer = _blob(client, payload)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", **empty},
        "layers": [{"mediaType": "application/octet-stream", **layer}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1},
    }
    return _manifest(client, tag, document, OCI_MANIFEST)


def test_signatures_and_other_referrers_on_the_tags_tab_and_the_image_page(world: World) -> None:
    client = world.client
    signed = push_image(client, REPO, "signed", ADMIN)
    sbom_only = push_image(client, REPO, "with-sbom", ADMIN, seed="sbom")
    push_image(client, REPO, "plain", ADMIN, seed="plain")
    signature = _referrer(client, signed, "application/vnd.cncf.notary.signature", b"sig", "sig-1")
    _referrer(client, signed, "application/spdx+json", b"sbom 1", "sbom-1")
    _referrer(client, sbom_only, "application/spdx+json", b"sbom 2", "sbom-2")
    admin = sign_in(TestClient(world.client.app).__enter__(), "admin", ADMIN_PASSWORD)
    html = admin.get(f"/repositories/{REPO}").text

    def referrers(tag: str) -> str:
        row = re.search(rf'<tr data-tag="{re.escape(tag)}">(.*?)</tr>', html, re.S)
        assert row
        cells = re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
        return re.sub(r"<[^>]+>", "", cells[-2] if "Delete" in row.group(1) else cells[-1]).strip()

    assert referrers("signed") == "signed 2"
    assert referrers("with-sbom") == "1"
    assert referrers("plain") == "—"
    image = admin.get(f"/repositories/{REPO}/-/image/{signed}").text
    grouped = image[image.index('id="referrers-heading"') :]
    assert (
        "<h3>application/spdx+json</h3>" in grouped
        and "<h3>application/vnd.cncf.notary.signature</h3>" in grouped
    )
    assert signature[:19] in grouped


def test_an_index_page_lists_its_platforms(world: World) -> None:
    client = world.client
    children = []
    for arch in ("amd64", "arm64"):
        digest = push_image(
            client, REPO, arch, ADMIN, config=_image_config(os="linux", architecture=arch), seed=arch
        )
        size = len(client.get(f"/v2/{REPO}/manifests/{digest}", auth=ADMIN).content)
        children.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": {"os": "linux", "architecture": arch},
            }
        )
    index = _manifest(
        client, "both", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}, OCI_INDEX
    )
    admin = sign_in(TestClient(world.client.app).__enter__(), "admin", ADMIN_PASSWORD)
    page = admin.get(f"/repositories/{REPO}/-/image/{index}").text
    platforms = page[page.index('id="platforms-heading"') :]
    rows = re.findall(r"<tr><td>([^<]*)</td><td><a href=\"[^\"]*/-/image/([^\"]+)\"", platforms)
    assert rows == [("linux/amd64", children[0]["digest"]), ("linux/arm64", children[1]["digest"])]
