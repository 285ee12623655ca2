"""The content-addressed layout: where blobs and uploads live, commit, discard, walk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dockyard.storage.blobstore import BlobStore, blob_path, digest_from_path, upload_path
from dockyard.storage.filesystem import FilesystemDriver


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    """A store on a fresh filesystem driver."""
    return BlobStore(FilesystemDriver(tmp_path / "storage"))


def _upload(store: BlobStore, upload_id: str, data: bytes) -> None:
    writer = store.upload_writer(upload_id, resume_at=0)
    writer.write(data)
    writer.commit()
    writer.close()


def test_paths() -> None:
    digest = "sha256:" + "ab" * 32
    assert blob_path(digest) == f"blobs/sha256/ab/{'ab' * 32}"
    assert digest_from_path(blob_path(digest)) == digest
    assert digest_from_path("uploads/x/data") is None
    assert digest_from_path("blobs/sha256/ab") is None
    assert upload_path("u1") == "uploads/u1/data"


def test_commit_upload_moves_bytes_into_place(store: BlobStore, tmp_path: Path) -> None:
    data = b"layer bytes" * 100
    digest = _digest(data)
    _upload(store, "u1", data)
    assert b"".join(store.read_upload("u1")) == data
    assert store.size(digest) is None
    store.commit_upload("u1", digest)
    assert store.size(digest) == len(data)
    assert b"".join(store.read(digest)) == data
    assert b"".join(store.read(digest, 5)) == data[5:]
    local = store.local_file(digest)
    assert local is not None
    assert local.read_bytes() == data
    assert store.redirect_url(digest) is None
    # The upload's scratch space is gone.
    assert not (tmp_path / "storage" / "uploads" / "u1").exists()
    assert list(store.read_upload("u1")) == []


def test_commit_of_known_digest_keeps_the_existing_copy(store: BlobStore) -> None:
    data = b"same bytes"
    digest = _digest(data)
    _upload(store, "u1", data)
    store.commit_upload("u1", digest)
    before = store.driver.stat(blob_path(digest))
    _upload(store, "u2", data)
    store.commit_upload("u2", digest)
    assert store.driver.stat(blob_path(digest)) == before
    assert [f.path for f in store.walk_uploads()] == []


def test_discard_and_delete(store: BlobStore) -> None:
    _upload(store, "u1", b"scratch")
    store.discard_upload("u1")
    assert list(store.walk_uploads()) == []
    store.discard_upload("u1")
    data = b"blob"
    _upload(store, "u2", data)
    store.commit_upload("u2", _digest(data))
    store.delete(_digest(data))
    assert store.size(_digest(data)) is None
    store.delete(_digest(data))


def test_walks(store: BlobStore) -> None:
    blobs = [b"one", b"two", b"three"]
    for i, data in enumerate(blobs):
        _upload(store, f"c{i}", data)
        store.commit_upload(f"c{i}", _digest(data))
    _upload(store, "open", b"in progress")
    assert {digest_from_path(f.path) for f in store.walk_blobs()} == {_digest(d) for d in blobs}
    assert [(f.path, f.size) for f in store.walk_uploads()] == [("uploads/open/data", 11)]


def test_resume_truncates(store: BlobStore) -> None:
    _upload(store, "u1", b"0123456789")
    writer = store.upload_writer("u1", resume_at=4)
    writer.write(b"x")
    writer.commit()
    writer.close()
    assert b"".join(store.read_upload("u1")) == b"0123x"
