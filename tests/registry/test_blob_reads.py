"""Blob HEAD, GET with and without Range, DELETE."""

from __future__ import annotations

from registry_support import error_codes, push_blob
from starlette.testclient import TestClient

NAME = "blobs/test"
DATA = bytes(range(256)) * 40


def test_head_and_get(app_client: TestClient) -> None:
    digest = push_blob(app_client, NAME, DATA)
    head = app_client.head(f"/v2/{NAME}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(DATA))
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.headers["ETag"] == f'"{digest}"'
    assert head.content == b""
    get = app_client.get(f"/v2/{NAME}/blobs/{digest}")
    assert get.status_code == 200
    assert get.content == DATA
    assert get.headers["Docker-Content-Digest"] == digest
    assert get.headers["ETag"] == f'"{digest}"'


def test_get_of_a_blob_larger_than_one_read(app_client: TestClient) -> None:
    data = bytes(range(251)) * (3 * 4177 + 19)  # about 3 MiB, not a multiple of any read size
    digest = push_blob(app_client, NAME, data)
    get = app_client.get(f"/v2/{NAME}/blobs/{digest}")
    assert get.status_code == 200
    assert get.headers["Content-Length"] == str(len(data))
    assert get.headers["Content-Type"] == "application/octet-stream"
    assert get.content == data


def test_range_requests(app_client: TestClient) -> None:
    digest = push_blob(app_client, NAME, DATA)
    partial = app_client.get(f"/v2/{NAME}/blobs/{digest}", headers={"Range": "bytes=100-199"})
    assert partial.status_code == 206
    assert partial.content == DATA[100:200]
    assert partial.headers["Content-Range"] == f"bytes 100-199/{len(DATA)}"
    tail = app_client.get(f"/v2/{NAME}/blobs/{digest}", headers={"Range": "bytes=10000-"})
    assert tail.status_code == 206
    assert tail.content == DATA[10000:]
    suffix = app_client.get(f"/v2/{NAME}/blobs/{digest}", headers={"Range": "bytes=-5"})
    assert suffix.status_code == 206
    assert suffix.content == DATA[-5:]
    beyond = app_client.get(f"/v2/{NAME}/blobs/{digest}", headers={"Range": f"bytes={len(DATA) + 10}-"})
    assert beyond.status_code == 416


def test_unknown_blob(app_client: TestClient) -> None:
    push_blob(app_client, NAME, b"something else")
    missing = "sha256:" + "0" * 64
    response = app_client.get(f"/v2/{NAME}/blobs/{missing}")
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UNKNOWN"]
    assert app_client.head(f"/v2/{NAME}/blobs/{missing}").status_code == 404
    # A blob stored in another repository is not readable through this one.
    digest = push_blob(app_client, "elsewhere/repo", b"private bytes")
    assert app_client.get(f"/v2/{NAME}/blobs/{digest}").status_code == 404


def test_delete_blob(app_client: TestClient) -> None:
    digest = push_blob(app_client, NAME, DATA)
    push_blob(app_client, "other/repo", DATA)
    response = app_client.delete(f"/v2/{NAME}/blobs/{digest}")
    assert response.status_code == 202
    assert response.headers["Docker-Content-Digest"] == digest
    assert app_client.head(f"/v2/{NAME}/blobs/{digest}").status_code == 404
    again = app_client.delete(f"/v2/{NAME}/blobs/{digest}")
    assert again.status_code == 404
    assert error_codes(again) == ["BLOB_UNKNOWN"]
    # Only the link went: the other repository still serves the bytes.
    assert app_client.get(f"/v2/other/repo/blobs/{digest}").content == DATA
