"""GET /v2/ and blob uploads in every shape the specification allows, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid

from registry_support import error_codes, push_blob, running, services_of, sha256
from starlette.testclient import TestClient

from dockyard.config import Settings

NAME = "team/app"


def _start(client: TestClient, name: str = NAME) -> str:
    response = client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status_code == 202, response.text
    location: str = response.headers["Location"]
    assert location.startswith(f"/v2/{name}/blobs/uploads/")
    upload_id = location.rsplit("/", 1)[1]
    assert response.headers["Docker-Upload-UUID"] == upload_id
    assert response.headers["Range"] == "0-0"
    return location


def _assert_blob(client: TestClient, name: str, data: bytes, digest: str | None = None) -> None:
    digest = digest or sha256(data)
    response = client.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Docker-Content-Digest"] == digest


def test_base_answers_with_api_version(app_client: TestClient) -> None:
    response = app_client.get("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert response.json() == {}
    head = app_client.head("/v2/")
    assert head.status_code == 200


def test_post_patch_put(app_client: TestClient) -> None:
    data = b"streamed blob " * 1000
    location = _start(app_client)
    patched = app_client.patch(location, content=data, headers={"Content-Type": "application/octet-stream"})
    assert patched.status_code == 202
    assert patched.headers["Range"] == f"0-{len(data) - 1}"
    assert patched.headers["Location"] == location
    put = app_client.put(location, params={"digest": sha256(data)})
    assert put.status_code == 201, put.text
    assert put.headers["Location"] == f"/v2/{NAME}/blobs/{sha256(data)}"
    assert put.headers["Docker-Content-Digest"] == sha256(data)
    _assert_blob(app_client, NAME, data)
    # The session is closed once the blob is committed.
    assert app_client.get(location).status_code == 404


def test_chunked_patches_with_content_range(app_client: TestClient) -> None:
    chunks = [b"a" * 1000, b"b" * 2500, b"c" * 7]
    location = _start(app_client)
    offset = 0
    for chunk in chunks:
        response = app_client.patch(
            location,
            content=chunk,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                "Content-Length": str(len(chunk)),
            },
        )
        assert response.status_code == 202, response.text
        offset += len(chunk)
        assert response.headers["Range"] == f"0-{offset - 1}"
    data = b"".join(chunks)
    assert app_client.put(location, params={"digest": sha256(data)}).status_code == 201
    _assert_blob(app_client, NAME, data)


def test_post_then_put_with_body(app_client: TestClient) -> None:
    data = b"the whole blob in the PUT"
    location = _start(app_client)
    response = app_client.put(
        location,
        params={"digest": sha256(data)},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    _assert_blob(app_client, NAME, data)


def test_patch_then_put_with_last_chunk(app_client: TestClient) -> None:
    location = _start(app_client)
    assert app_client.patch(location, content=b"first-").status_code == 202
    response = app_client.put(location, params={"digest": sha256(b"first-last")}, content=b"last")
    assert response.status_code == 201, response.text
    _assert_blob(app_client, NAME, b"first-last")


def test_monolithic_post(app_client: TestClient) -> None:
    data = b"monolithic"
    digest = push_blob(app_client, NAME, data)
    _assert_blob(app_client, NAME, data, digest)


def test_empty_blob(app_client: TestClient) -> None:
    digest = push_blob(app_client, NAME, b"")
    assert digest == sha256(b"")
    response = app_client.get(f"/v2/{NAME}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == b""


def test_upload_status(app_client: TestClient) -> None:
    location = _start(app_client)
    status = app_client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-0"
    assert status.headers["Location"] == location
    assert status.headers["Docker-Upload-UUID"] == location.rsplit("/", 1)[1]
    app_client.patch(location, content=b"12345")
    status = app_client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-4"


def test_out_of_order_chunk_is_416_with_range(app_client: TestClient) -> None:
    location = _start(app_client)
    assert (
        app_client.patch(location, content=b"0123456789", headers={"Content-Range": "0-9"}).status_code == 202
    )
    response = app_client.patch(location, content=b"xyz", headers={"Content-Range": "20-22"})
    assert response.status_code == 416
    assert response.headers["Range"] == "0-9"
    assert response.headers["Location"] == location
    assert error_codes(response) == ["BLOB_UPLOAD_INVALID"]
    # The session is unharmed: continue where it stands.
    assert app_client.patch(location, content=b"abc", headers={"Content-Range": "10-12"}).status_code == 202
    assert app_client.put(location, params={"digest": sha256(b"0123456789abc")}).status_code == 201


def test_chunk_length_must_match_content_range(app_client: TestClient) -> None:
    location = _start(app_client)
    response = app_client.patch(location, content=b"abc", headers={"Content-Range": "0-9"})
    assert response.status_code == 400
    assert error_codes(response) == ["SIZE_INVALID"]
    assert app_client.get(location).headers["Range"] == "0-0"


def test_cancel(app_client: TestClient) -> None:
    location = _start(app_client)
    app_client.patch(location, content=b"bytes")
    response = app_client.delete(location)
    assert response.status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        after = app_client.request(method, location)
        assert after.status_code == 404
        assert error_codes(after) == ["BLOB_UPLOAD_UNKNOWN"]


def test_resume_in_a_new_process(settings: Settings) -> None:
    """A session continued by another app (no in-memory hash state) hashes what is on disk."""
    first, second = b"A" * 300_000, b"B" * 123_457
    with running(settings) as client:
        location = _start(client)
        assert (
            client.patch(
                location, content=first, headers={"Content-Range": f"0-{len(first) - 1}"}
            ).status_code
            == 202
        )
    with running(settings) as client:
        status = client.get(location)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{len(first) - 1}"
        end = len(first) + len(second) - 1
        patched = client.patch(location, content=second, headers={"Content-Range": f"{len(first)}-{end}"})
        assert patched.status_code == 202
    with running(settings) as client:
        put = client.put(location, params={"digest": sha256(first + second)})
        assert put.status_code == 201, put.text
        _assert_blob(client, NAME, first + second)


def test_sha512_digests(app_client: TestClient) -> None:
    data = b"sha512 content" * 100
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    response = app_client.post(f"/v2/{NAME}/blobs/uploads/", params={"digest": digest}, content=data)
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    _assert_blob(app_client, NAME, data, digest)
    # Chunked, too: the hash is computed for the algorithm the PUT names.
    location = _start(app_client)
    app_client.patch(location, content=b"part one ")
    app_client.patch(location, content=b"part two")
    digest2 = "sha512:" + hashlib.sha512(b"part one part two").hexdigest()
    assert app_client.put(location, params={"digest": digest2}).status_code == 201
    _assert_blob(app_client, NAME, b"part one part two", digest2)


def test_cross_repository_mount(app_client: TestClient) -> None:
    data = b"shared layer"
    digest = push_blob(app_client, "source/repo", data)
    for params in ({"mount": digest, "from": "source/repo"}, {"from": "source/repo", "mount": digest}):
        target = f"target/{uuid.uuid4().hex[:8]}"
        # Parameter order in the query string must not matter.
        query = "&".join(f"{k}={v}" for k, v in params.items())
        response = app_client.post(f"/v2/{target}/blobs/uploads/?{query}")
        assert response.status_code == 201, response.text
        assert response.headers["Location"] == f"/v2/{target}/blobs/{digest}"
        assert response.headers["Docker-Content-Digest"] == digest
        _assert_blob(app_client, target, data)


def test_mount_from_unknown_source_opens_a_session(app_client: TestClient) -> None:
    digest = sha256(b"nowhere")
    for source in ("no/such/repo", NAME):
        response = app_client.post(f"/v2/{NAME}/blobs/uploads/", params={"mount": digest, "from": source})
        assert response.status_code == 202
        location = response.headers["Location"]
        assert app_client.get(location).status_code == 204
    assert app_client.head(f"/v2/{NAME}/blobs/{digest}").status_code == 404


def test_upload_is_scoped_to_its_repository(app_client: TestClient) -> None:
    location = _start(app_client)
    upload_id = location.rsplit("/", 1)[1]
    other = app_client.get(f"/v2/other/repo/blobs/uploads/{upload_id}")
    assert other.status_code == 404
    assert error_codes(other) == ["BLOB_UPLOAD_UNKNOWN"]


def test_bytes_of_a_failed_chunk_never_reach_the_blob(app_client: TestClient) -> None:
    """A chunk refused after it was written (its length contradicts its Content-Range) leaves the session
    at its recorded size: completing right away stores exactly the accepted bytes."""
    location = _start(app_client)
    assert app_client.patch(location, content=b"12345", headers={"Content-Range": "0-4"}).status_code == 202
    refused = app_client.patch(location, content=b"x" * 20, headers={"Content-Range": "5-9"})
    assert refused.status_code == 400
    assert app_client.get(location).headers["Range"] == "0-4"
    put = app_client.put(location, params={"digest": sha256(b"12345")})
    assert put.status_code == 201, put.text
    get = app_client.get(f"/v2/{NAME}/blobs/{sha256(b'12345')}")
    assert get.content == b"12345"
    assert get.headers["Content-Length"] == "5"
    head = app_client.head(f"/v2/{NAME}/blobs/{sha256(b'12345')}")
    assert head.headers["Content-Length"] == "5"


def test_mount_of_a_blob_whose_bytes_are_gone_opens_a_session(app_client: TestClient) -> None:
    """The source still lists the blob but its bytes are gone (collected meanwhile, or lost): mounting
    would link nothing readable, so the client is asked to upload instead."""
    data = b"bytes about to vanish"
    digest = push_blob(app_client, "source/gone", data)
    store = services_of(app_client).store
    store.delete(digest)
    response = app_client.post(f"/v2/{NAME}/blobs/uploads/", params={"mount": digest, "from": "source/gone"})
    assert response.status_code == 202
    assert app_client.head(f"/v2/{NAME}/blobs/{digest}").status_code == 404
    location = response.headers["Location"]
    assert app_client.put(location, params={"digest": digest}, content=data).status_code == 201
    assert app_client.get(f"/v2/{NAME}/blobs/{digest}").content == data
    assert app_client.get(f"/v2/source/gone/blobs/{digest}").content == data
