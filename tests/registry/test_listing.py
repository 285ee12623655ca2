"""Tags list, catalog (both paginated with Link), referrers with and without the artifactType filter."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

from registry_support import (
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    error_codes,
    image_manifest,
    push_blob,
    put_manifest,
    sha256,
)
from starlette.testclient import TestClient

NAME = "listing/test"


def _next(link: str) -> tuple[str, dict[str, list[str]]]:
    assert link.endswith('; rel="next"'), link
    url = urlparse(link.split(";", 1)[0].strip("<>"))
    return url.path, parse_qs(url.query)


def test_tags_pagination(app_client: TestClient) -> None:
    content = image_manifest(app_client, NAME)
    tags = ["b", "a", "c10", "c2", "Z", "latest", "v1.0"]
    for tag in tags:
        assert put_manifest(app_client, NAME, tag, content, OCI_MANIFEST).status_code == 201
    everything = app_client.get(f"/v2/{NAME}/tags/list")
    assert everything.status_code == 200
    assert everything.json() == {"name": NAME, "tags": sorted(tags)}
    assert "Link" not in everything.headers

    collected: list[str] = []
    url, params = f"/v2/{NAME}/tags/list", {"n": "3"}
    pages = 0
    while True:
        page = app_client.get(url, params=params)
        assert page.status_code == 200
        body = page.json()
        assert len(body["tags"]) <= 3
        collected += body["tags"]
        pages += 1
        if "Link" not in page.headers:
            break
        url, query = _next(page.headers["Link"])
        assert url == f"/v2/{NAME}/tags/list"
        params = {key: values[0] for key, values in query.items()}
        assert params["n"] == "3"
    assert collected == sorted(tags)
    assert pages == 3

    after = app_client.get(f"/v2/{NAME}/tags/list", params={"last": "b"})
    assert after.json()["tags"] == [t for t in sorted(tags) if t > "b"]
    exact = app_client.get(f"/v2/{NAME}/tags/list", params={"n": str(len(tags))})
    assert len(exact.json()["tags"]) == len(tags)
    assert "Link" not in exact.headers
    zero = app_client.get(f"/v2/{NAME}/tags/list", params={"n": "0"})
    assert zero.status_code == 200
    assert zero.json()["tags"] == []
    past = app_client.get(f"/v2/{NAME}/tags/list", params={"last": "zzz"})
    assert (past.status_code, past.json()["tags"]) == (200, [])

    # A repository whose tags are all gone still exists: an empty list, not NAME_UNKNOWN.
    for tag in tags:
        assert app_client.delete(f"/v2/{NAME}/manifests/{tag}").status_code == 202
    emptied = app_client.get(f"/v2/{NAME}/tags/list")
    assert (emptied.status_code, emptied.json()) == (200, {"name": NAME, "tags": []})


def test_tags_of_unknown_repository(app_client: TestClient) -> None:
    response = app_client.get("/v2/no/such/tags/list")
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]


def test_catalog_pagination(app_client: TestClient) -> None:
    names = ["zeta/app", "alpha", "alpha/app", "beta/one", "beta/two"]
    for name in names:
        push_blob(app_client, name, b"x")
    full = app_client.get("/v2/_catalog")
    assert full.status_code == 200
    assert full.json() == {"repositories": sorted(names)}
    first = app_client.get("/v2/_catalog", params={"n": "2"})
    assert first.json()["repositories"] == sorted(names)[:2]
    url, query = _next(first.headers["Link"])
    assert url == "/v2/_catalog"
    assert query == {"n": ["2"], "last": [sorted(names)[1]]}
    second = app_client.get(url, params={k: v[0] for k, v in query.items()})
    assert second.json()["repositories"] == sorted(names)[2:4]
    last = app_client.get("/v2/_catalog", params={"n": "2", "last": sorted(names)[3]})
    assert last.json()["repositories"] == sorted(names)[4:]
    assert "Link" not in last.headers


def _referrer(client: TestClient, subject: bytes, artifact_type: str, seed: str) -> bytes:
    config = json.dumps({"seed": seed}).encode()
    layer = f"payload {seed}".encode()
    push_blob(client, NAME, config)
    push_blob(client, NAME, layer)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor("application/vnd.oci.empty.v1+json", config),
        "layers": [descriptor("application/octet-stream", layer)],
        "subject": descriptor(OCI_MANIFEST, subject),
        "annotations": {"org.example.seed": seed},
    }
    content = json.dumps(document).encode()
    assert put_manifest(client, NAME, sha256(content), content, OCI_MANIFEST).status_code == 201
    return content


def test_referrers(app_client: TestClient) -> None:
    subject = image_manifest(app_client, NAME)
    put_manifest(app_client, NAME, "v1", subject, OCI_MANIFEST)
    sbom = _referrer(app_client, subject, "application/spdx+json", "sbom")
    signature = _referrer(app_client, subject, "application/vnd.example.sig", "sig")
    unrelated = image_manifest(app_client, NAME, seed="other")
    put_manifest(app_client, NAME, "v2", unrelated, OCI_MANIFEST)

    response = app_client.get(f"/v2/{NAME}/referrers/{sha256(subject)}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in response.headers
    index = response.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_digest = {m["digest"]: m for m in index["manifests"]}
    assert set(by_digest) == {sha256(sbom), sha256(signature)}
    assert by_digest[sha256(sbom)] == {
        "mediaType": OCI_MANIFEST,
        "digest": sha256(sbom),
        "size": len(sbom),
        "artifactType": "application/spdx+json",
        "annotations": {"org.example.seed": "sbom"},
    }

    filtered = app_client.get(
        f"/v2/{NAME}/referrers/{sha256(subject)}", params={"artifactType": "application/vnd.example.sig"}
    )
    assert filtered.status_code == 200
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in filtered.json()["manifests"]] == [sha256(signature)]

    nothing = app_client.get(f"/v2/{NAME}/referrers/{sha256(unrelated)}")
    assert nothing.status_code == 200
    assert nothing.json()["manifests"] == []
    # Deleting a referrer removes it from the list.
    assert app_client.delete(f"/v2/{NAME}/manifests/{sha256(sbom)}").status_code == 202
    after = app_client.get(f"/v2/{NAME}/referrers/{sha256(subject)}").json()["manifests"]
    assert [m["digest"] for m in after] == [sha256(signature)]


def test_referrers_of_unknown_subject_is_an_empty_index(app_client: TestClient) -> None:
    response = app_client.get(f"/v2/{NAME}/referrers/{sha256(b'never')}")
    assert response.status_code == 200
    assert response.json()["manifests"] == []
    bad = app_client.get(f"/v2/{NAME}/referrers/sha256:nothex")
    assert bad.status_code == 400
    assert error_codes(bad) == ["DIGEST_INVALID"]
