"""Bad input of every kind gets the specification's status and error code, never a traceback."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from registry_support import (
    OCI_MANIFEST,
    error_codes,
    image_manifest,
    push_blob,
    put_manifest,
    services_of,
    sha256,
)
from starlette.testclient import TestClient

from dockyard.db import content as q
from dockyard.db.schema import uploads

NAME = "bad/input"
GOOD_DIGEST = sha256(b"anything")

Request = Callable[[TestClient], httpx.Response]


@pytest.fixture
def client(app_client: TestClient) -> Iterator[TestClient]:
    """The app, checked healthy after each test's abuse."""
    yield app_client
    ping = app_client.get("/_ping")
    assert ping.status_code == 200, ping.text


def _check(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert error_codes(response) == [code], response.text
    for marker in ("Traceback", 'File "', "Error:", "sqlalchemy", "psycopg"):
        assert marker not in response.text, response.text


# Dot segments are percent-encoded, as an attacker would send them: HTTP clients remove literal ones.
BAD_NAMES = {
    "dotdot": "%2E%2E/x",
    "dotdot-inner": "a/%2E%2E/b",
    "dot": "a/%2E/b",
    "upper": "UPPER/case",
    "long": "a" * 256,
    "double-slash": "a//b",
    "trailing-slash": "a/",
    "leading-dash": "-a",
    "separators": "a__-b",
    "encoded-slash": "a%2Fb",
    "encoded-slash-lower": "a%2fb",
}


@pytest.mark.parametrize("bad_name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_invalid_names(client: TestClient, bad_name: str) -> None:
    for method, path in [
        ("GET", f"/v2/{bad_name}/tags/list"),
        ("POST", f"/v2/{bad_name}/blobs/uploads/"),
        ("GET", f"/v2/{bad_name}/manifests/latest"),
        ("HEAD", f"/v2/{bad_name}/blobs/{GOOD_DIGEST}"),
    ]:
        response = client.request(method, path)
        if method == "HEAD":
            assert response.status_code == 400, path
            assert response.content == b""
            continue
        _check(response, 400, "NAME_INVALID")


def test_name_of_255_characters_is_valid(client: TestClient) -> None:
    name = "/".join(["a" * 63] * 4)
    assert len(name) == 255
    push_blob(client, name, b"ok")
    assert client.get(f"/v2/{name}/tags/list").status_code == 200
    _check(client.get(f"/v2/{name}a/tags/list"), 400, "NAME_INVALID")


BAD_DIGESTS = {
    "short": ("sha256:" + "a" * 63, "DIGEST_INVALID"),
    "long": ("sha256:" + "a" * 65, "DIGEST_INVALID"),
    "upper-hex": ("sha256:" + "A" * 64, "DIGEST_INVALID"),
    "no-algorithm": ("a" * 64, None),
    "sha512-short": ("sha512:" + "a" * 64, "DIGEST_INVALID"),
    "unknown-algorithm": ("md5:" + "a" * 32, "UNSUPPORTED"),
}


@pytest.mark.parametrize("case", list(BAD_DIGESTS))
def test_invalid_digests(client: TestClient, case: str) -> None:
    digest, code = BAD_DIGESTS[case]
    push_blob(client, NAME, b"present")
    blob_get = client.get(f"/v2/{NAME}/blobs/{digest}")
    upload = client.post(f"/v2/{NAME}/blobs/uploads/", params={"digest": digest}, content=b"data")
    if code is None:
        # Without a colon, a blob reference is not a digest at all.
        _check(blob_get, 400, "DIGEST_INVALID")
        _check(upload, 400, "DIGEST_INVALID")
        return
    status = 415 if code == "UNSUPPORTED" else 400
    _check(blob_get, status, code)
    _check(upload, status, code)
    _check(client.get(f"/v2/{NAME}/manifests/{digest}"), status, code)
    _check(client.delete(f"/v2/{NAME}/blobs/{digest}"), status, code)
    session = client.post(f"/v2/{NAME}/blobs/uploads/").headers["Location"]
    _check(client.put(session, params={"digest": digest}, content=b"x"), status, code)
    _check(client.post(f"/v2/{NAME}/blobs/uploads/", params={"mount": digest, "from": "a/b"}), status, code)


def test_put_without_digest(client: TestClient) -> None:
    session = client.post(f"/v2/{NAME}/blobs/uploads/").headers["Location"]
    _check(client.put(session, content=b"data"), 400, "DIGEST_INVALID")


def test_wrong_digest_stores_nothing(client: TestClient) -> None:
    data, claimed = b"actual content", sha256(b"claimed content")
    _check(
        client.post(f"/v2/{NAME}/blobs/uploads/", params={"digest": claimed}, content=data),
        400,
        "DIGEST_INVALID",
    )
    session = client.post(f"/v2/{NAME}/blobs/uploads/").headers["Location"]
    client.patch(session, content=data)
    _check(client.put(session, params={"digest": claimed}), 400, "DIGEST_INVALID")
    for digest in (claimed, sha256(data)):
        assert client.head(f"/v2/{NAME}/blobs/{digest}").status_code == 404
    # The failed session is gone.
    _check(client.get(session), 404, "BLOB_UPLOAD_UNKNOWN")
    # A manifest pushed by a digest it does not have.
    content = image_manifest(client, NAME)
    _check(put_manifest(client, NAME, sha256(b"other"), content, OCI_MANIFEST), 400, "DIGEST_INVALID")
    assert client.head(f"/v2/{NAME}/manifests/{sha256(content)}").status_code == 404


def _manifest_cases(client: TestClient) -> dict[str, tuple[bytes, str, int, str]]:
    good = json.loads(image_manifest(client, NAME))
    cases: dict[str, tuple[bytes, str, int, str]] = {
        "not-json": (b"{not json", OCI_MANIFEST, 400, "MANIFEST_INVALID"),
        "not-utf8": (b"\xff\xfe{}", OCI_MANIFEST, 400, "MANIFEST_INVALID"),
        "array": (b"[]", OCI_MANIFEST, 400, "MANIFEST_INVALID"),
        "empty": (b"", OCI_MANIFEST, 400, "MANIFEST_INVALID"),
    }
    v1 = dict(good, schemaVersion=1)
    cases["schema-1"] = (json.dumps(v1).encode(), OCI_MANIFEST, 400, "MANIFEST_INVALID")
    schema1_type = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    cases["schema-1-type"] = (
        json.dumps({"schemaVersion": 1, "name": NAME, "tag": "x", "fsLayers": []}).encode(),
        schema1_type,
        400,
        "MANIFEST_INVALID",
    )
    cases["layers-not-list"] = (
        json.dumps(dict(good, layers={"a": 1})).encode(),
        OCI_MANIFEST,
        400,
        "MANIFEST_INVALID",
    )
    bad_layer = dict(good["layers"][0], digest="sha256:xyz")
    cases["bad-descriptor-digest"] = (
        json.dumps(dict(good, layers=[bad_layer])).encode(),
        OCI_MANIFEST,
        400,
        "MANIFEST_INVALID",
    )
    negative = dict(good["layers"][0], size=-1)
    cases["negative-size"] = (
        json.dumps(dict(good, layers=[negative])).encode(),
        OCI_MANIFEST,
        400,
        "MANIFEST_INVALID",
    )
    no_config = {k: v for k, v in good.items() if k != "config"}
    cases["no-config"] = (json.dumps(no_config).encode(), OCI_MANIFEST, 400, "MANIFEST_INVALID")
    cases["type-mismatch"] = (
        json.dumps(good).encode(),
        "application/vnd.docker.distribution.manifest.v2+json",
        400,
        "MANIFEST_INVALID",
    )
    cases["manifests-not-list"] = (
        json.dumps(
            {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": 5}
        ).encode(),
        "application/vnd.oci.image.index.v1+json",
        400,
        "MANIFEST_INVALID",
    )
    cases["annotations-not-strings"] = (
        json.dumps(dict(good, annotations={"a": 1})).encode(),
        OCI_MANIFEST,
        400,
        "MANIFEST_INVALID",
    )
    return cases


def test_malformed_manifests(client: TestClient) -> None:
    for case, (content, media_type, status, code) in _manifest_cases(client).items():
        response = put_manifest(client, NAME, "bad", content, media_type)
        assert response.status_code == status, (case, response.text)
        assert error_codes(response) == [code], (case, response.text)
        assert "Traceback" not in response.text
    assert client.get(f"/v2/{NAME}/manifests/bad").status_code == 404


def test_oversize_manifests(client: TestClient) -> None:
    huge = b"{" + b" " * (4 * 1024 * 1024) + b"}"
    _check(put_manifest(client, NAME, "huge", huge, OCI_MANIFEST), 413, "MANIFEST_INVALID")

    # Streamed without Content-Length, the limit still holds.
    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b" " * (1024 * 1024)

    streamed = client.put(
        f"/v2/{NAME}/manifests/streamed", content=chunks(), headers={"Content-Type": OCI_MANIFEST}
    )
    _check(streamed, 413, "MANIFEST_INVALID")


def test_invalid_tags(client: TestClient) -> None:
    content = image_manifest(client, NAME)
    for tag in ("-leading", "." + "x", "a" * 129, "has%20space"):
        _check(put_manifest(client, NAME, tag, content, OCI_MANIFEST), 400, "TAG_INVALID")


@pytest.mark.parametrize("upload_id", [str(uuid.uuid4()), "garbage", "0" * 200, "%00"])
def test_unknown_upload_ids(client: TestClient, upload_id: str) -> None:
    push_blob(client, NAME, b"make the repository exist")
    url = f"/v2/{NAME}/blobs/uploads/{upload_id}"
    _check(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    _check(client.patch(url, content=b"data"), 404, "BLOB_UPLOAD_UNKNOWN")
    _check(client.put(url, params={"digest": sha256(b"data")}, content=b"data"), 404, "BLOB_UPLOAD_UNKNOWN")
    _check(client.delete(url), 404, "BLOB_UPLOAD_UNKNOWN")
    # In a repository that does not exist either.
    _check(client.get(f"/v2/never/seen/blobs/uploads/{upload_id}"), 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize(
    "n",
    [
        "-1", "abc", "1.5", "0x10", " 3", "3 ", "+3", "1_000", "\u0661\u0662", "\u00b2", "\U0001d7d9",
        str(1 << 63), "9" * 30, "9" * 5000,
    ],
)  # fmt: skip
def test_invalid_n(client: TestClient, n: str) -> None:
    content = image_manifest(client, NAME)
    put_manifest(client, NAME, "v1", content, OCI_MANIFEST)
    _check(client.get(f"/v2/{NAME}/tags/list", params={"n": n}), 400, "PAGINATION_NUMBER_INVALID")
    _check(client.get("/v2/_catalog", params={"n": n}), 400, "PAGINATION_NUMBER_INVALID")


def test_bad_content_range(client: TestClient) -> None:
    session = client.post(f"/v2/{NAME}/blobs/uploads/").headers["Location"]
    for value in ("garbage", "5-2", "bytes=a-b"):
        response = client.patch(session, content=b"abc", headers={"Content-Range": value})
        _check(response, 400, "SIZE_INVALID")
    assert client.get(session).headers["Range"] == "0-0"


def test_unknown_endpoints_and_methods(client: TestClient) -> None:
    _check(client.get("/v2/some/repo/nothing/here"), 404, "NOT_FOUND")
    response = client.post(f"/v2/{NAME}/manifests/latest")
    assert response.status_code == 405
    assert error_codes(response) == ["UNSUPPORTED"]


def test_huge_n_is_a_large_page(client: TestClient) -> None:
    content = image_manifest(client, NAME)
    put_manifest(client, NAME, "v1", content, OCI_MANIFEST)
    largest = str((1 << 63) - 1)
    response = client.get(f"/v2/{NAME}/tags/list", params={"n": largest})
    assert response.status_code == 200
    assert response.json()["tags"] == ["v1"]
    assert client.get("/v2/_catalog", params={"n": largest}).json()["repositories"] == [NAME]


def test_rejected_uploads_leave_no_session_behind(client: TestClient) -> None:
    for digest in ("sha256:abc", "md5:" + "a" * 32, sha256(b"claimed")):
        response = client.post(f"/v2/{NAME}/blobs/uploads/", params={"digest": digest}, content=b"actual")
        assert response.status_code in {400, 415}
    with services_of(client).db.read() as conn:
        assert q.count_rows(conn, uploads) == 0
    assert list(services_of(client).store.walk_uploads()) == []
