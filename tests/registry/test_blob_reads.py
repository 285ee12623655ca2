"""Blob HEAD, GET with and without Range, DELETE."""

from __future__ import annotations

import httpx
import pytest
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


def _get(client: TestClient, url: str, range_value: str | bytes, **headers: str) -> httpx.Response:
    return client.get(url, headers={"Range": range_value, **headers})


def _assert_416(response: httpx.Response) -> None:
    assert response.status_code == 416, (response.status_code, response.text)
    assert response.headers["Content-Range"] == f"bytes */{len(DATA)}"
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert error_codes(response) == ["RANGE_INVALID"]


SATISFIABLE = {
    "first-last": ("bytes=100-199", 100, 199),
    "first-last-beyond-end": ("bytes=10000-99999", 10000, len(DATA) - 1),
    "open": ("bytes=10000-", 10000, len(DATA) - 1),
    "suffix": ("bytes=-5", len(DATA) - 5, len(DATA) - 1),
    "suffix-longer-than-blob": ("bytes=-99999", 0, len(DATA) - 1),
    "one-byte": ("bytes=0-0", 0, 0),
    "last-byte": (f"bytes={len(DATA) - 1}-", len(DATA) - 1, len(DATA) - 1),
    "unit-case": ("BYTES=1-2", 1, 2),
    "whitespace": ("bytes= 3-4 ", 3, 4),
    "empty-list-elements": ("bytes=,5-6,", 5, 6),
    "64-bit-end": (f"bytes=7-{(1 << 63) - 1}", 7, len(DATA) - 1),
}


@pytest.mark.parametrize("case", list(SATISFIABLE))
def test_every_single_range_form(app_client: TestClient, case: str) -> None:
    value, start, end = SATISFIABLE[case]
    digest = push_blob(app_client, NAME, DATA)
    response = _get(app_client, f"/v2/{NAME}/blobs/{digest}", value)
    assert response.status_code == 206, response.text
    assert response.content == DATA[start : end + 1]
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["Docker-Content-Digest"] == digest


UNSATISFIABLE = {
    "end-before-start": "bytes=500-0",
    "end-before-start-by-one": "bytes=11-10",
    "start-at-size": f"bytes={len(DATA)}-",
    "start-past-size": f"bytes={len(DATA) + 10}-{len(DATA) + 20}",
    "zero-suffix": "bytes=-0",
    "all-of-several-outside": f"bytes={len(DATA)}-,{len(DATA) + 5}-",
}


@pytest.mark.parametrize("case", list(UNSATISFIABLE))
def test_unsatisfiable_ranges_are_416_in_oci_json(app_client: TestClient, case: str) -> None:
    digest = push_blob(app_client, NAME, DATA)
    _assert_416(_get(app_client, f"/v2/{NAME}/blobs/{digest}", UNSATISFIABLE[case]))


IGNORED = {
    "garbage": "garbage",
    "no-unit": "100-199",
    "other-unit": "items=0-1",
    "empty-set": "bytes=",
    "only-dash": "bytes=-",
    "letters": "bytes=a-b",
    "sign": "bytes=+1-2",
    "negative": "bytes=-1-2",
    "unicode-digits": "bytes=\u0661-\u0662".encode(),
    "latin1-superscripts": b"bytes=\xb2-\xb3",
    "past-64-bits": f"bytes=0-{1 << 63}",
    "thousands-of-digits": "bytes=0-" + "9" * 5000,
    "several-ranges": "bytes=0-1,5-6",
    "overlapping": "bytes=0-10,5-15",
    "many-ranges": "bytes=" + ",".join(f"{i}-{i}" for i in range(200)),
    "control-character": "bytes=1-2\x00",
}


@pytest.mark.parametrize("case", list(IGNORED))
def test_invalid_or_multiple_ranges_send_the_whole_blob(app_client: TestClient, case: str) -> None:
    """RFC 9110: a Range that cannot be parsed is ignored; several ranges may be answered with all."""
    digest = push_blob(app_client, NAME, DATA)
    response = _get(app_client, f"/v2/{NAME}/blobs/{digest}", IGNORED[case])
    assert response.status_code == 200, response.text
    assert response.content == DATA
    assert "Content-Range" not in response.headers


def test_if_range(app_client: TestClient) -> None:
    digest = push_blob(app_client, NAME, DATA)
    url = f"/v2/{NAME}/blobs/{digest}"
    matching = _get(app_client, url, "bytes=0-9", **{"If-Range": f'"{digest}"'})
    assert (matching.status_code, matching.content) == (206, DATA[:10])
    other = _get(app_client, url, "bytes=0-9", **{"If-Range": '"sha256:something-else"'})
    assert (other.status_code, other.content) == (200, DATA)


def test_range_of_a_large_blob_streams_the_exact_bytes(app_client: TestClient) -> None:
    data = bytes(range(251)) * 9000  # over two read chunks
    digest = push_blob(app_client, NAME, data)
    start, end = 1_000_003, 2_100_007
    response = _get(app_client, f"/v2/{NAME}/blobs/{digest}", f"bytes={start}-{end}")
    assert response.status_code == 206
    assert response.content == data[start : end + 1]
