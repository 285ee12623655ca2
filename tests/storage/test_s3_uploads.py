"""Upload sessions on S3 across replicas: each chunk lands on another replica (its own services, sharing
the database and the bucket), parts and tails carry over through the upload's row, and the blob appears
under its digest only once complete."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_server import ACCESS_KEY, SECRET_KEY, MotoServer
from sqlalchemy import update

from dockyard.app import Services, build_services
from dockyard.config import load_settings
from dockyard.content.digests import digest_of, parse_digest
from dockyard.content.errors import BlobUploadInvalid, DigestInvalid
from dockyard.db.schema import uploads
from dockyard.storage.blobstore import blob_path
from dockyard.storage.driver import PathNotFound
from dockyard.storage.s3 import MIN_PART_SIZE

NAME = "cluster/repo"


@pytest.fixture
def bucket(moto_server: MotoServer) -> str:
    """An empty bucket."""
    return moto_server.new_bucket()


@pytest.fixture
def replicas(moto_server: MotoServer, bucket: str, tmp_path: Path) -> Iterator[list[Services]]:
    """Three replicas sharing one SQLite database and one bucket."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    storage = {
        "driver": "s3",
        "s3": {
            "bucket": bucket,
            "endpoint_url": moto_server.url,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "part_size": MIN_PART_SIZE,
        },
    }
    built = [
        build_services(load_settings(data_dir=tmp_path / f"r{i}", database_url=url, storage=storage))
        for i in range(3)
    ]
    try:
        yield built
    finally:
        for services in built:
            services.db.close()


def _upload(replicas: list[Services], chunks: list[bytes], digest: str) -> int:
    status = replicas[0].uploads.start(NAME)
    offset = 0
    for index, chunk in enumerate(chunks):
        appender = replicas[index % len(replicas)].uploads.append(NAME, status.id, offset)
        for start in range(0, len(chunk), 1 << 20):
            appender.write(chunk[start : start + (1 << 20)])
        if index == len(chunks) - 1:
            return appender.complete(parse_digest(digest))
        offset = appender.finish()
    raise AssertionError("no chunks")


def _first_chunk(services: Services, data: bytes) -> str:
    """A new upload session holding `data` as its first chunk; its id."""
    status = services.uploads.start(NAME)
    first = services.uploads.append(NAME, status.id, 0)
    first.write(data)
    first.finish()
    return status.id


def _first_chunk_without_hash_state(services: Services, data: bytes) -> str:
    """A session holding `data` whose running hash is lost (as if written by a replica without resumable
    hashing); its id."""
    upload_id = _first_chunk(services, data)
    with services.db.write() as conn:
        conn.execute(update(uploads).where(uploads.c.id == upload_id).values(hash_state=None))
    return upload_id


def _leftovers(moto_server: MotoServer, bucket: str) -> tuple[list[str], list[str]]:
    client = moto_server.client
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="uploads/").get("Contents", [])]
    return keys, [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def test_chunks_on_three_replicas_make_one_blob(
    replicas: list[Services], moto_server: MotoServer, bucket: str
) -> None:
    # Chunks across part boundaries: a part is sent by one replica from bytes another replica received.
    chunks = [os.urandom(MIN_PART_SIZE + 300_000), os.urandom(3 << 20), os.urandom((2 << 20) + 17)]
    data = b"".join(chunks)
    digest = digest_of(data)
    assert _upload(replicas, chunks, digest) == len(data)
    for services in replicas:
        assert b"".join(services.store.read(digest)) == data
        assert services.blobs.size(NAME, digest) == len(data)
    # Nothing of the session is left: no tails, no temporary object, no multipart upload.
    assert _leftovers(moto_server, bucket) == ([], [])


def test_small_chunks_and_an_empty_blob(replicas: list[Services]) -> None:
    chunks = [b"a" * 1000, b"b" * 10, b"c"]
    data = b"".join(chunks)
    digest = digest_of(data)
    assert _upload(replicas, chunks, digest) == len(data)
    assert b"".join(replicas[2].store.read(digest)) == data
    empty = digest_of(b"")
    assert _upload(replicas, [b""], empty) == 0
    assert replicas[1].store.size(empty) == 0


def test_without_a_hash_state_the_committed_bytes_are_hashed(replicas: list[Services]) -> None:
    """The running hash lost (say, written by a replica without resumable hashing): storage cannot be read
    before the commit, so the digest is checked on the committed bytes instead."""
    a, b, _ = replicas
    chunks = [os.urandom(70_000), os.urandom(50_000)]
    data = b"".join(chunks)
    wrong = b.uploads.append(NAME, _first_chunk_without_hash_state(a, chunks[0]), len(chunks[0]))
    wrong.write(chunks[1])
    bad_digest = digest_of(data + b"x")
    with pytest.raises(DigestInvalid):
        wrong.complete(parse_digest(bad_digest))
    with pytest.raises(PathNotFound):
        b.store.driver.stat(blob_path(bad_digest))
    digest = digest_of(data)
    last = b.uploads.append(NAME, _first_chunk_without_hash_state(a, chunks[0]), len(chunks[0]))
    last.write(chunks[1])
    assert last.complete(parse_digest(digest)) == len(data)
    assert b"".join(b.store.read(digest)) == data


def test_a_wrong_digest_leaves_nothing_behind(
    replicas: list[Services], moto_server: MotoServer, bucket: str
) -> None:
    chunks = [os.urandom(MIN_PART_SIZE + 5), b"end"]
    wrong = digest_of(b"something else")
    with pytest.raises(DigestInvalid):
        _upload(replicas, chunks, wrong)
    assert replicas[0].store.size(wrong) is None
    assert _leftovers(moto_server, bucket) == ([], [])


def test_a_session_whose_stored_bytes_are_gone_must_restart(
    replicas: list[Services], moto_server: MotoServer, bucket: str
) -> None:
    """Removed behind Dockyard's back (a lifecycle rule, an operator): a clear 'restart the upload', not a
    storage failure to retry for ever. (A multipart upload aborted meanwhile is the same case on S3, which
    answers NoSuchUpload; moto answers it with a 500, so the test removes the upload's tail instead.)"""
    a, b, _ = replicas
    data = os.urandom(MIN_PART_SIZE + 10)
    digest = digest_of(data)
    upload_id = _first_chunk(a, data)
    client = moto_server.client
    for entry in client.list_objects_v2(Bucket=bucket, Prefix="uploads/")["Contents"]:
        client.delete_object(Bucket=bucket, Key=entry["Key"])
    with pytest.raises(BlobUploadInvalid, match="restart the upload"):
        b.uploads.complete(NAME, upload_id, parse_digest(digest))
    with pytest.raises(BlobUploadInvalid, match="restart the upload"):
        b.uploads.append(NAME, upload_id, len(data))
    assert b.store.size(digest) is None
