"""Hostile numbers, headers, characters and methods: always a 4xx in OCI JSON, never a 500 or plain text."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from registry_support import OCI_MANIFEST, error_codes, image_manifest, push_blob, put_manifest, sha256
from starlette.testclient import TestClient

from dockyard.content.manifests import ManifestService

NAME = "hostile/input"

# Numbers as an attacker writes them: Unicode digits, signs, whitespace, huge, past 64 bits.
BAD_NUMBERS: dict[str, str | bytes] = {
    "letters": "abc",
    "negative": "-1",
    "plus-sign": "+5",
    "inner-space": "1 2",
    "underscore": "1_000",
    "decimal": "1.0",
    "hex": "0x10",
    "arabic-indic-digits": "\u0661\u0662".encode(),
    "latin1-superscript": "\u00b2".encode("latin-1"),
    "fullwidth-digits": "\uff11\uff12".encode(),
    "past-64-bits": str(1 << 63),
    "thousands-of-digits": "9" * 5000,
    "empty": "",
}


def _assert_oci_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert response.headers["Content-Type"] == "application/json"
    codes = error_codes(response)
    assert codes and (code is None or codes == [code]), response.text[:300]
    assert "Traceback" not in response.text


@pytest.fixture
def client(app_client: TestClient) -> Iterator[TestClient]:
    """The app, checked healthy after each test's abuse."""
    yield app_client
    assert app_client.get("/_ping").status_code == 200


@pytest.mark.parametrize("case", list(BAD_NUMBERS))
def test_malformed_content_length(client: TestClient, case: str) -> None:
    value = BAD_NUMBERS[case]
    content = image_manifest(client, NAME)
    headers = {"Content-Length": value}
    manifest = client.put(
        f"/v2/{NAME}/manifests/v1", content=content, headers={**headers, "Content-Type": OCI_MANIFEST}
    )
    _assert_oci_error(manifest, 400, "SIZE_INVALID")
    assert client.get(f"/v2/{NAME}/manifests/v1").status_code == 404
    session = client.post(f"/v2/{NAME}/blobs/uploads/").headers["Location"]
    _assert_oci_error(client.patch(session, content=b"abc", headers=headers), 400, "SIZE_INVALID")
    finish = client.put(session, params={"digest": sha256(b"abc")}, content=b"abc", headers=headers)
    _assert_oci_error(finish, 400, "SIZE_INVALID")
    monolithic = client.post(
        f"/v2/{NAME}/blobs/uploads/", params={"digest": sha256(b"abc")}, content=b"abc", headers=headers
    )
    _assert_oci_error(monolithic, 400, "SIZE_INVALID")
    assert client.head(f"/v2/{NAME}/blobs/{sha256(b'abc')}").status_code == 404


@pytest.mark.parametrize("case", list(BAD_NUMBERS))
def test_malformed_content_range(client: TestClient, case: str) -> None:
    session = client.post(f"/v2/{NAME}/blobs/uploads/").headers["Location"]
    value = BAD_NUMBERS[case]
    for header in (value, b"0-" + (value if isinstance(value, bytes) else value.encode())):
        response = client.patch(session, content=b"abc", headers={"Content-Range": header})
        _assert_oci_error(response, 400, "SIZE_INVALID")
    assert client.get(session).headers["Range"] == "0-0"


@pytest.mark.parametrize("case", [c for c in BAD_NUMBERS if c != "empty"])
def test_malformed_n(client: TestClient, case: str) -> None:
    value = BAD_NUMBERS[case]
    n = value.decode("latin-1") if isinstance(value, bytes) else value
    push_blob(client, NAME, b"make the repository")
    for path in (f"/v2/{NAME}/tags/list", "/v2/_catalog"):
        _assert_oci_error(client.get(path, params={"n": n}), 400, "PAGINATION_NUMBER_INVALID")


@pytest.mark.parametrize("last", ["a\x00b", "a\nb", "\x7f", "é", "x" * 257, "\u202e"])
def test_malformed_last(client: TestClient, last: str) -> None:
    push_blob(client, NAME, b"make the repository")
    _assert_oci_error(client.get(f"/v2/{NAME}/tags/list", params={"last": last}), 400, "TAG_INVALID")
    _assert_oci_error(client.get("/v2/_catalog", params={"last": last}), 400, "NAME_INVALID")


@pytest.mark.parametrize("encoded", ["%0A", "%0D", "%00", "%09", "%20"])
def test_control_characters_in_names_and_tags(client: TestClient, encoded: str) -> None:
    content = image_manifest(client, NAME)
    tag = put_manifest(client, NAME, f"v1{encoded}", content, OCI_MANIFEST)
    _assert_oci_error(tag, 400, "TAG_INVALID")
    assert client.get(f"/v2/{NAME}/tags/list").json()["tags"] == []
    _assert_oci_error(client.get(f"/v2/{NAME}/manifests/v1{encoded}"), 404, "MANIFEST_UNKNOWN")
    for path in (f"/v2/{NAME}{encoded}/tags/list", f"/v2/a{encoded}b/blobs/uploads/"):
        response = client.request("GET" if "tags" in path else "POST", path)
        # Refused as an invalid name, or (a line break) by the router as an unknown path.
        assert response.status_code in {400, 404}
        _assert_oci_error(response, response.status_code)


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "CONNECT", "PROPFIND", "FOO"])
def test_unsupported_methods_are_405_with_allow(client: TestClient, method: str) -> None:
    push_blob(client, NAME, b"x")
    expected = {
        "/v2": {"GET", "HEAD"},
        "/v2/": {"GET", "HEAD"},
        f"/v2/{NAME}/tags/list": {"GET"},
        f"/v2/{NAME}/manifests/latest": {"GET", "HEAD", "PUT", "DELETE"},
        f"/v2/{NAME}/blobs/{sha256(b'x')}": {"GET", "HEAD", "DELETE"},
        f"/v2/{NAME}/blobs/uploads/": {"POST"},
        "/v2/_catalog": {"GET"},
    }
    for path, allowed in expected.items():
        response = client.request(method, path)
        _assert_oci_error(response, 405, "UNSUPPORTED")
        assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed, path
    # A method the catch-all route takes but the resource does not.
    wrong = client.post(f"/v2/{NAME}/tags/list")
    _assert_oci_error(wrong, 405, "UNSUPPORTED")
    assert wrong.headers["Allow"] == "GET"


@pytest.mark.parametrize(
    "path", ["/v2/some/repo/nothing/here", "/v2/_catalog/extra", "/v2/x/tags/list/more", "/v2/a%0Ab/c"]
)
def test_unknown_routes_are_404_in_oci_json(client: TestClient, path: str) -> None:
    _assert_oci_error(client.get(path), 404, "NOT_FOUND")


def test_internal_errors_are_oci_json(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault nobody foresaw, inside a handler and before one: JSON with the API version, no trace."""

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(ManifestService, "tags", broken)
    response = client.get(f"/v2/{NAME}/tags/list")
    _assert_oci_error(response, 500, "UNKNOWN")
    assert "secret internal detail" not in response.text
    access = client.app.state.registry.access  # type: ignore[attr-defined]
    monkeypatch.setattr(access, "require", broken)
    base = client.get("/v2/")
    _assert_oci_error(base, 500, "UNKNOWN")
    assert "secret internal detail" not in base.text
    # Outside /v2/ the other surfaces answer as they do.
    assert "Docker-Distribution-API-Version" not in client.request("PATCH", "/_ping").headers


@pytest.mark.parametrize("artifact_type", ["a\x00b", "\x00", "x" * 5000, "\ud7ff", "text/plain\n"])
def test_hostile_artifact_type_filters_to_nothing(client: TestClient, artifact_type: str) -> None:
    """No stored artifact type holds a control character or is that long: an empty, filtered index."""
    content = image_manifest(client, NAME)
    put_manifest(client, NAME, "v1", content, OCI_MANIFEST)
    response = client.get(f"/v2/{NAME}/referrers/{sha256(content)}", params={"artifactType": artifact_type})
    assert response.status_code == 200, response.text[:300]
    assert response.json()["manifests"] == []
    assert response.headers["OCI-Filters-Applied"] == "artifactType"


@pytest.mark.parametrize("field", ["artifactType", "mediaType", "subject-mediaType", "layer-mediaType"])
@pytest.mark.parametrize("hostile", ["application/vnd.example\u0000+json", "a/b\n", "a/" + "b" * 300])
def test_hostile_media_types_inside_manifests(client: TestClient, field: str, hostile: str) -> None:
    """Stored as text: a NUL (which PostgreSQL refuses), a line break, or past the column's size."""
    document = json.loads(image_manifest(client, NAME))
    if field == "subject-mediaType":
        document["subject"] = {"mediaType": hostile, "digest": sha256(b"s"), "size": 1}
    elif field == "layer-mediaType":
        document["layers"][0]["mediaType"] = hostile
    else:
        document[field] = hostile
    response = put_manifest(client, NAME, "v1", json.dumps(document).encode(), OCI_MANIFEST)
    _assert_oci_error(response, 400, "MANIFEST_INVALID")
    assert client.get(f"/v2/{NAME}/manifests/v1").status_code == 404
