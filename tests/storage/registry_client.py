"""A minimal /v2/ client for storage tests: blob uploads in each shape clients use, and manifest pushes."""

from __future__ import annotations

import hashlib
import json

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha256(data: bytes) -> str:
    """The digest of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def start_upload(client: httpx.Client, repo: str) -> str:
    """POST an upload session; its Location."""
    response = client.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    return response.headers["Location"]


def push_monolithic(client: httpx.Client, repo: str, data: bytes) -> httpx.Response:
    """POST then one PUT carrying the whole body (containerd, oras)."""
    location = start_upload(client, repo)
    return client.put(location, params={"digest": sha256(data)}, content=data)


def push_chunked(client: httpx.Client, repo: str, data: bytes, chunk: int) -> httpx.Response:
    """POST, PATCHes of `chunk` bytes, then PUT ?digest= (docker, skopeo with one chunk). The failing
    PATCH's answer, if one fails."""
    location = start_upload(client, repo)
    for offset in range(0, len(data), chunk):
        piece = data[offset : offset + chunk]
        response = client.patch(
            location,
            content=piece,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(piece) - 1}",
            },
        )
        if response.status_code != 202:
            return response
        location = response.headers["Location"]
    return client.put(location, params={"digest": sha256(data)})


def manifest_for(config: bytes, layers: list[bytes]) -> bytes:
    """An OCI image manifest naming these blobs."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(x), "size": len(x)} for x in layers],
    }
    return json.dumps(document).encode()


def push_manifest(client: httpx.Client, repo: str, reference: str, content: bytes) -> httpx.Response:
    """PUT a manifest by tag or digest."""
    return client.put(
        f"/v2/{repo}/manifests/{reference}", content=content, headers={"Content-Type": OCI_MANIFEST}
    )


def push_image(client: httpx.Client, repo: str, tag: str, config: bytes, layers: list[bytes]) -> str:
    """Push the blobs and a manifest tagged `tag`; the manifest's digest."""
    for blob in [config, *layers]:
        response = push_monolithic(client, repo, blob)
        assert response.status_code == 201, response.text
    content = manifest_for(config, layers)
    response = push_manifest(client, repo, tag, content)
    assert response.status_code == 201, response.text
    return sha256(content)
