"""What the S3 driver does beyond the shared contract (test_driver_suite.py), against moto's S3 server:
presigned redirects, errors, multipart uploads cleaned up, and a writer that lost its lease."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import pytest
from s3_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer

from dockyard.storage.driver import PathNotFound, StorageError
from dockyard.storage.s3 import MIN_PART_SIZE, S3Driver, S3Options


def _driver(server: MotoServer, bucket: str | None = None, **options: Any) -> S3Driver:
    return S3Driver(
        S3Options(
            bucket=bucket or server.new_bucket(),
            endpoint_url=server.url,
            region=REGION,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            part_size=MIN_PART_SIZE,
            **options,
        )
    )


def _put(driver: S3Driver, path: str, data: bytes) -> None:
    writer = driver.writer(path)
    writer.write(data)
    writer.commit()


def _keys(server: MotoServer, bucket: str) -> set[str]:
    listed = server.client.list_objects_v2(Bucket=bucket)
    return {o["Key"] for o in listed.get("Contents", [])}


def _multipart_uploads(server: MotoServer, bucket: str) -> list[str]:
    return [u["Key"] for u in server.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def test_redirect_url_is_a_working_presigned_get(moto_server: MotoServer) -> None:
    driver = _driver(moto_server, redirect_seconds=60)
    _put(driver, "blobs/x", b"redirected bytes")
    url = driver.redirect_url("blobs/x")
    assert url is not None
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    assert httpx.get(url).content == b"redirected bytes"
    # Signed for GET only (moto does not check signatures; S3 does): a HEAD is answered by the registry.
    assert "/blobs/x?" in url
    assert _driver(moto_server).redirect_url("blobs/x") is None


def test_failures_become_storage_errors(moto_server: MotoServer) -> None:
    missing_bucket = _driver(moto_server, bucket="no-such-bucket-here")
    for operation in (
        lambda: missing_bucket.stat("a"),
        lambda: missing_bucket.read("a"),
        lambda: list(missing_bucket.walk("blobs")),
        lambda: _put(missing_bucket, "a", b"x"),
    ):
        with pytest.raises(StorageError) as caught:
            operation()
        # A missing bucket is a broken setup, never "this blob is absent".
        assert not isinstance(caught.value, PathNotFound)
        assert SECRET_KEY not in str(caught.value)
    unreachable = S3Driver(
        S3Options(bucket="b-1", endpoint_url="http://127.0.0.1:9", access_key="a", secret_key="s")
    )
    started = time.monotonic()
    with pytest.raises(StorageError, match="cannot stat a"):
        unreachable.stat("a")
    assert time.monotonic() - started < 60


def test_delete_aborts_unfinished_multipart_uploads_and_tails(moto_server: MotoServer) -> None:
    bucket = moto_server.new_bucket()
    driver = _driver(moto_server, bucket)
    writer = driver.writer("uploads/u1/data")
    writer.write(os.urandom(MIN_PART_SIZE + 10))
    writer.flush()
    writer.close()
    assert _multipart_uploads(moto_server, bucket) == ["uploads/u1/data"]
    assert any(key.startswith("uploads/u1/data/.tails/") for key in _keys(moto_server, bucket))
    _put(driver, "uploads/u10/data", b"a neighbour with a longer name")
    driver.delete("uploads/u1")
    assert _multipart_uploads(moto_server, bucket) == []
    assert _keys(moto_server, bucket) == {"uploads/u10/data"}


def test_each_resume_keeps_only_the_live_tail(moto_server: MotoServer) -> None:
    bucket = moto_server.new_bucket()
    driver = _driver(moto_server, bucket)
    state, size = None, 0
    for chunk in (b"one ", b"two ", b"three"):
        writer = driver.writer("up/data", resume_at=size, state=state)
        writer.write(chunk)
        writer.flush()
        state, size = writer.state, writer.size
        writer.close()
        tails = [k for k in _keys(moto_server, bucket) if "/.tails/" in k]
        # The tail just written, and at most the one it replaces (deleted by the next writer).
        assert 1 <= len(tails) <= 2
    last = driver.writer("up/data", resume_at=size, state=state)
    last.commit()
    assert b"".join(driver.read("up/data")) == b"one two three"


def test_a_writer_that_lost_its_lease_cannot_corrupt_the_object(moto_server: MotoServer) -> None:
    """Two writers resume from the same state (the second took over a lease the first lost): the loser's
    part replaces the winner's under the same number, and the winner's commit then fails, rather than
    completing with bytes other than those it hashed."""
    driver = _driver(moto_server)
    first = driver.writer("uploads/u/data")
    head = os.urandom(MIN_PART_SIZE)
    first.write(head)
    first.flush()
    state = first.state
    first.close()
    winner = driver.writer("uploads/u/data", resume_at=MIN_PART_SIZE, state=state)
    loser = driver.writer("uploads/u/data", resume_at=MIN_PART_SIZE, state=state)
    winner.write(b"w" * MIN_PART_SIZE)
    loser.write(b"l" * MIN_PART_SIZE)
    with pytest.raises(StorageError):
        winner.commit()
    with pytest.raises(PathNotFound):
        driver.stat("uploads/u/data")


def test_a_state_for_another_size_is_refused(moto_server: MotoServer) -> None:
    driver = _driver(moto_server)
    writer = driver.writer("up/data")
    writer.write(b"12345")
    writer.flush()
    with pytest.raises(StorageError, match="holds 5 bytes, not 4"):
        driver.writer("up/data", resume_at=4, state=writer.state)
    with pytest.raises(StorageError, match="unreadable"):
        driver.writer("up/data", resume_at=5, state=b"{not json")
