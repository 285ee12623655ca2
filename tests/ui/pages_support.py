"""Helpers for the in-process UI tests: sign in through the form, read a page's CSRF token, push an image
through /v2/ (so the pages have tags to show)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from starlette.testclient import TestClient

from dockyard.auth.identity import Identity

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SYSTEM = Identity(user_id=0, name="test", is_admin=True)


def csrf_of(html: str) -> str:
    """The CSRF token in the first form of a page."""
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(client: TestClient, user: str, password: str) -> TestClient:
    """Sign the client in through the form (cookies stay in its jar)."""
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={"csrf_token": csrf_of(page.text), "username": user, "password": password, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return client


def post_form(client: TestClient, page: str, action: str, data: dict[str, str], **kwargs: Any) -> Any:
    """POST a form of `page` with the token that page carries."""
    token = csrf_of(client.get(page).text)
    return client.post(action, data={"csrf_token": token, **data}, follow_redirects=False, **kwargs)


def push_image(
    client: TestClient,
    repo: str,
    tag: str,
    auth: tuple[str, str],
    config: dict[str, Any] | None = None,
    seed: str | None = None,
) -> str:
    """Push a one-layer image through /v2/ (monolithic uploads); returns the manifest digest. The layer
    is made from `seed` (default: the tag), so two tags pushed with one seed share a digest."""
    layer = b"layer of " + (seed or tag).encode()
    config_bytes = json.dumps(
        config or {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    descriptors = []
    for data, media_type in (
        (config_bytes, "application/vnd.oci.image.config.v1+json"),
        (layer, "application/vnd.oci.image.layer.v1.tar+gzip"),
    ):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        response = client.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, auth=auth
        )
        assert response.status_code == 201, response.text
        descriptors.append({"mediaType": media_type, "digest": digest, "size": len(data)})
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptors[0],
            "layers": descriptors[1:],
        }
    ).encode()
    response = client.put(
        f"/v2/{repo}/manifests/{tag}",
        content=manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        auth=auth,
    )
    assert response.status_code == 201, response.text
    return "sha256:" + hashlib.sha256(manifest).hexdigest()
