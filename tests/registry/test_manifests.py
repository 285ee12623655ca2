"""Manifests: every kind, by tag and digest, byte-exact, Accept negotiation, references, subject, limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from registry_support import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    error_codes,
    image_manifest,
    index_of,
    push_blob,
    put_manifest,
    sha256,
)
from starlette.testclient import TestClient

NAME = "manifests/test"


def _round_trip(client: TestClient, content: bytes, media_type: str, tag: str = "v1") -> str:
    digest = sha256(content)
    put = put_manifest(client, NAME, tag, content, media_type)
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == digest
    assert put.headers["Location"] == f"/v2/{NAME}/manifests/{digest}"
    for reference in (tag, digest):
        get = client.get(f"/v2/{NAME}/manifests/{reference}", headers={"Accept": media_type})
        assert get.status_code == 200, get.text
        assert get.content == content
        assert get.headers["Content-Type"] == media_type
        assert get.headers["Docker-Content-Digest"] == digest
        head = client.head(f"/v2/{NAME}/manifests/{reference}", headers={"Accept": media_type})
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(content))
        assert head.headers["Docker-Content-Digest"] == digest
        assert head.content == b""
    return digest


def _assert_gone(client: TestClient, reference: str) -> None:
    response = client.get(f"/v2/{NAME}/manifests/{reference}")
    assert response.status_code == 404
    assert error_codes(response) == ["MANIFEST_UNKNOWN"]


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_image_manifest_lifecycle(app_client: TestClient, media_type: str) -> None:
    content = image_manifest(app_client, NAME, media_type=media_type)
    digest = _round_trip(app_client, content, media_type)
    response = app_client.delete(f"/v2/{NAME}/manifests/{digest}")
    assert response.status_code == 202
    _assert_gone(app_client, digest)
    # Deleting by digest removes its tags too.
    _assert_gone(app_client, "v1")
    assert app_client.delete(f"/v2/{NAME}/manifests/{digest}").status_code == 404


def test_push_by_digest(app_client: TestClient) -> None:
    content = image_manifest(app_client, NAME)
    digest = sha256(content)
    response = put_manifest(app_client, NAME, digest, content, OCI_MANIFEST)
    assert response.status_code == 201
    assert app_client.get(f"/v2/{NAME}/manifests/{digest}").content == content
    assert app_client.get(f"/v2/{NAME}/tags/list").json()["tags"] == []


@pytest.mark.parametrize(
    ("index_type", "child_types"),
    [
        (OCI_INDEX, [OCI_MANIFEST, OCI_MANIFEST]),
        (DOCKER_LIST, [DOCKER_MANIFEST, DOCKER_MANIFEST]),
        (OCI_INDEX, [OCI_MANIFEST, DOCKER_MANIFEST]),
    ],
    ids=["oci-index", "docker-list", "mixed"],
)
def test_indexes(app_client: TestClient, index_type: str, child_types: list[str]) -> None:
    children = []
    for i, child_type in enumerate(child_types):
        content = image_manifest(app_client, NAME, seed=str(i), media_type=child_type)
        assert put_manifest(app_client, NAME, sha256(content), content, child_type).status_code == 201
        children.append((child_type, content))
    index = index_of(index_type, *children)
    digest = _round_trip(app_client, index, index_type, tag="multi")
    for child_type, content in children:
        child = app_client.get(f"/v2/{NAME}/manifests/{sha256(content)}", headers={"Accept": child_type})
        assert child.content == content
    # A child of an index cannot be deleted while the index lists it; the index stays pullable.
    refused = app_client.delete(f"/v2/{NAME}/manifests/{sha256(children[0][1])}")
    assert refused.status_code == 409
    assert error_codes(refused) == ["DENIED"]
    assert app_client.get(f"/v2/{NAME}/manifests/multi", headers={"Accept": index_type}).content == index
    assert app_client.head(f"/v2/{NAME}/manifests/{sha256(children[0][1])}").status_code == 200
    # Once the index is gone, the children may go.
    assert app_client.delete(f"/v2/{NAME}/manifests/{digest}").status_code == 202
    assert app_client.delete(f"/v2/{NAME}/manifests/{sha256(children[0][1])}").status_code == 202


def test_artifact_with_artifact_type_and_custom_config(app_client: TestClient) -> None:
    config = b'{"custom": true}'
    blob = b"signature bytes"
    push_blob(app_client, NAME, config)
    push_blob(app_client, NAME, blob)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature.v1",
        "config": descriptor("application/vnd.example.config.v1+json", config),
        "layers": [descriptor("application/vnd.example.signature.v1", blob)],
        "annotations": {"org.example.note": "hello"},
    }
    _round_trip(app_client, json.dumps(document).encode(), OCI_MANIFEST, tag="artifact")


def test_byte_exact_round_trip(app_client: TestClient) -> None:
    plain = json.loads(image_manifest(app_client, NAME))
    # Odd key order, pretty-printed, trailing newline, non-ASCII annotation: every byte must come back.
    odd: dict[str, Any] = {
        "layers": plain["layers"],
        "annotations": {"z": "ü ☃", "a": "1"},
        "config": plain["config"],
        "mediaType": OCI_MANIFEST,
        "schemaVersion": 2,
    }
    content = (json.dumps(odd, indent=7, ensure_ascii=False) + "\n\n").encode()
    _round_trip(app_client, content, OCI_MANIFEST, tag="pretty")


def test_content_type_may_be_generic(app_client: TestClient) -> None:
    content = image_manifest(app_client, NAME)
    response = put_manifest(app_client, NAME, "generic", content, "application/json")
    assert response.status_code == 201
    get = app_client.get(f"/v2/{NAME}/manifests/generic")
    assert get.headers["Content-Type"] == OCI_MANIFEST


def test_accept_negotiation(app_client: TestClient) -> None:
    oci = image_manifest(app_client, NAME, seed="oci")
    docker = image_manifest(app_client, NAME, seed="docker", media_type=DOCKER_MANIFEST)
    assert put_manifest(app_client, NAME, "oci", oci, OCI_MANIFEST).status_code == 201
    assert put_manifest(app_client, NAME, "docker", docker, DOCKER_MANIFEST).status_code == 201
    url = f"/v2/{NAME}/manifests/oci"
    separate = [("Accept", DOCKER_MANIFEST), ("Accept", OCI_MANIFEST)]
    response = app_client.get(url, headers=separate)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_MANIFEST
    joined = app_client.get(url, headers={"Accept": f"{DOCKER_MANIFEST}, {OCI_MANIFEST};q=0.5"})
    assert joined.status_code == 200
    assert joined.content == oci
    # Asking by tag only for a type the manifest is not: not found (as the reference registry answers).
    refused = app_client.get(url, headers={"Accept": DOCKER_MANIFEST})
    assert refused.status_code == 404
    assert error_codes(refused) == ["MANIFEST_UNKNOWN"]
    assert app_client.get(url, headers={"Accept": "*/*"}).status_code == 200
    assert app_client.get(url).status_code == 200
    docker_response = app_client.get(f"/v2/{NAME}/manifests/docker", headers=separate)
    assert docker_response.headers["Content-Type"] == DOCKER_MANIFEST


def test_subject_location_and_oci_subject(app_client: TestClient) -> None:
    subject = image_manifest(app_client, NAME, seed="subject")
    assert put_manifest(app_client, NAME, "base", subject, OCI_MANIFEST).status_code == 201
    referrer = image_manifest(
        app_client,
        NAME,
        seed="sbom",
        extra={"artifactType": "application/spdx+json", "subject": descriptor(OCI_MANIFEST, subject)},
    )
    response = put_manifest(app_client, NAME, sha256(referrer), referrer, OCI_MANIFEST)
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == sha256(subject)
    assert response.headers["Location"] == f"/v2/{NAME}/manifests/{sha256(referrer)}"
    plain = put_manifest(app_client, NAME, "base", subject, OCI_MANIFEST)
    assert "OCI-Subject" not in plain.headers


def test_subject_may_be_absent(app_client: TestClient) -> None:
    """The subject need not exist (it may be pushed later)."""
    missing = {"mediaType": OCI_MANIFEST, "digest": sha256(b"not pushed"), "size": 10}
    referrer = image_manifest(app_client, NAME, seed="early", extra={"subject": missing})
    response = put_manifest(app_client, NAME, sha256(referrer), referrer, OCI_MANIFEST)
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == missing["digest"]


@pytest.mark.parametrize("missing", ["layer", "config", "child"])
def test_missing_references(app_client: TestClient, missing: str) -> None:
    absent = descriptor(OCI_MANIFEST if missing == "child" else "application/octet-stream", b"absent")
    if missing == "child":
        present = image_manifest(app_client, NAME)
        put_manifest(app_client, NAME, sha256(present), present, OCI_MANIFEST)
        document = json.loads(index_of(OCI_INDEX, (OCI_MANIFEST, present)))
        document["manifests"].append(absent)
        media_type = OCI_INDEX
    else:
        document = json.loads(image_manifest(app_client, NAME))
        if missing == "layer":
            document["layers"].append(absent)
        else:
            document["config"] = absent
        media_type = OCI_MANIFEST
    response = put_manifest(app_client, NAME, "broken", json.dumps(document).encode(), media_type)
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert response.json()["errors"][0]["detail"]["digest"] == absent["digest"]
    _assert_gone(app_client, "broken")


def test_layer_from_another_repository_is_unknown(app_client: TestClient) -> None:
    content = image_manifest(app_client, "other/repo")
    response = put_manifest(app_client, NAME, "v1", content, OCI_MANIFEST)
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]


def test_size_limit(app_client: TestClient) -> None:
    plain = json.loads(image_manifest(app_client, NAME))
    limit = 4 * 1024 * 1024
    plain["annotations"] = {"padding": ""}
    base = len(json.dumps(plain).encode())
    plain["annotations"]["padding"] = "x" * (limit - base)
    exact = json.dumps(plain).encode()
    assert len(exact) == limit
    assert put_manifest(app_client, NAME, "at-limit", exact, OCI_MANIFEST).status_code == 201
    plain["annotations"]["padding"] += "x"
    over = json.dumps(plain).encode()
    response = put_manifest(app_client, NAME, "over", over, OCI_MANIFEST)
    assert response.status_code == 413
    assert error_codes(response) == ["MANIFEST_INVALID"]
    _assert_gone(app_client, "over")


def test_delete_tag_removes_only_that_tag(app_client: TestClient) -> None:
    content = image_manifest(app_client, NAME)
    for tag in ("one", "two"):
        assert put_manifest(app_client, NAME, tag, content, OCI_MANIFEST).status_code == 201
    response = app_client.delete(f"/v2/{NAME}/manifests/one")
    assert response.status_code == 202
    _assert_gone(app_client, "one")
    assert app_client.get(f"/v2/{NAME}/manifests/two").content == content
    assert app_client.get(f"/v2/{NAME}/manifests/{sha256(content)}").status_code == 200
    assert app_client.get(f"/v2/{NAME}/tags/list").json()["tags"] == ["two"]
    missing = app_client.delete(f"/v2/{NAME}/manifests/one")
    assert missing.status_code == 404
    assert error_codes(missing) == ["MANIFEST_UNKNOWN"]


def test_retag_moves_the_tag(app_client: TestClient) -> None:
    first = image_manifest(app_client, NAME, seed="1")
    second = image_manifest(app_client, NAME, seed="2")
    put_manifest(app_client, NAME, "latest", first, OCI_MANIFEST)
    put_manifest(app_client, NAME, "latest", second, OCI_MANIFEST)
    assert app_client.get(f"/v2/{NAME}/manifests/latest").content == second
    assert app_client.get(f"/v2/{NAME}/manifests/{sha256(first)}").content == first


def test_unknown_repository_and_manifest(app_client: TestClient) -> None:
    response = app_client.get("/v2/never/pushed/manifests/latest")
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]
    content = image_manifest(app_client, NAME)
    put_manifest(app_client, NAME, "v1", content, OCI_MANIFEST)
    _assert_gone(app_client, "nope")
    _assert_gone(app_client, sha256(b"nope"))


@pytest.mark.parametrize(
    "tag", ["-leading-dash", ".leading-dot", "a" * 129, "has%20space", "semi;colon", "\u00e9"]
)
def test_invalid_tag_reads_are_unknown_and_writes_invalid(app_client: TestClient, tag: str) -> None:
    """As the reference registry: no manifest is known by an invalid tag (404); pushing to one is 400."""
    content = image_manifest(app_client, NAME)
    put_manifest(app_client, NAME, "v1", content, OCI_MANIFEST)
    get = app_client.get(f"/v2/{NAME}/manifests/{tag}")
    assert get.status_code == 404
    assert error_codes(get) == ["MANIFEST_UNKNOWN"]
    head = app_client.head(f"/v2/{NAME}/manifests/{tag}")
    assert (head.status_code, head.content) == (404, b"")
    assert head.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    put = put_manifest(app_client, NAME, tag, content, OCI_MANIFEST)
    assert put.status_code == 400
    assert error_codes(put) == ["TAG_INVALID"]
