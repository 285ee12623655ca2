"""Garbage collection: grace period, references across repositories, dry runs, uploads, orphan files, CLI."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from dockyard.app import Services
from dockyard.cli import main
from dockyard.config import Settings
from dockyard.content.digests import digest_of as _digest
from dockyard.content.digests import parse_digest
from dockyard.content.errors import (
    BlobUnknown,
    BlobUploadUnknown,
    ManifestBlobUnknown,
    ManifestReferenced,
)
from dockyard.content.gc import GarbageCollector
from dockyard.content.manifest_format import OCI_INDEX, OCI_MANIFEST
from dockyard.db import content as q
from dockyard.db.schema import blobs
from dockyard.storage.blobstore import blob_path, upload_path
from support.pushing import push_blob as _push


def _manifest(services: Services, name: str, config: bytes, layer: bytes, tag: str = "v1") -> str:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(layer),
                    "size": len(layer)}],
    }  # fmt: skip
    content = json.dumps(document).encode()
    return services.manifests.put(name, tag, content, OCI_MANIFEST).digest


def _collector(services: Services, grace: int, upload_expiry: int = 3600) -> GarbageCollector:
    return GarbageCollector(services.db, services.store, grace, upload_expiry)


def _recorded(services: Services, digest: str) -> bool:
    with services.db.read() as conn:
        return digest in q.known_blob_digests(conn, [digest])


def test_unreferenced_blob_removed_only_after_grace(services: Services) -> None:
    before_push = time.time()
    digest = _push(services, "gc/repo", b"never referenced")
    after_push = time.time()
    # Within the grace period: kept.
    report = _collector(services, grace=3600).run()
    assert report.blobs == []
    assert services.store.size(digest) == len(b"never referenced")
    # The cutoff is a point in time: what was linked before it is garbage, what was linked after is not.
    with services.db.read() as conn:
        assert q.unreferenced_blobs(conn, before_push) == []
        assert q.unreferenced_blobs(conn, after_push + 0.001) == [(digest, len(b"never referenced"))]
    time.sleep(0.01)
    report = _collector(services, grace=0).run()
    assert report.blobs == [(digest, len(b"never referenced"))]
    assert report.bytes == len(b"never referenced")
    assert services.store.size(digest) is None
    assert not _recorded(services, digest)
    with pytest.raises(BlobUnknown):
        services.blobs.size("gc/repo", digest)


def test_referenced_blobs_survive(services: Services) -> None:
    config, layer = b'{"config": 1}', b"layer"
    _push(services, "gc/repo", config)
    _push(services, "gc/repo", layer)
    _manifest(services, "gc/repo", config, layer)
    time.sleep(0.01)
    report = _collector(services, grace=0).run()
    assert report.blobs == []
    assert report.orphan_files == []
    for data in (config, layer):
        assert services.blobs.size("gc/repo", _digest(data)) == len(data)
        assert b"".join(services.store.read(_digest(data))) == data


def test_blob_referenced_only_from_another_repository_survives(services: Services) -> None:
    config, layer = b'{"config": 2}', b"shared layer"
    for name in ("gc/one", "gc/two"):
        _push(services, name, config)
        _push(services, name, layer)
    # Only gc/one has a manifest; in gc/two the blobs are unreferenced links.
    _manifest(services, "gc/one", config, layer)
    time.sleep(0.01)
    assert _collector(services, grace=0).run().blobs == []
    assert services.store.size(_digest(layer)) == len(layer)
    assert services.blobs.size("gc/one", _digest(layer)) == len(layer)


def test_blobs_of_a_deleted_manifest_are_collected(services: Services) -> None:
    config, layer = b'{"config": 3}', b"soon garbage"
    _push(services, "gc/repo", config)
    _push(services, "gc/repo", layer)
    manifest = _manifest(services, "gc/repo", config, layer)
    services.manifests.delete("gc/repo", parse_digest(manifest))
    time.sleep(0.01)
    report = _collector(services, grace=0).run()
    assert sorted(report.blobs) == sorted([(_digest(config), len(config)), (_digest(layer), len(layer))])
    assert services.store.size(_digest(layer)) is None


def test_dry_run_lists_and_removes_nothing(services: Services) -> None:
    blobs = [b"garbage one", b"garbage two, longer"]
    digests = [_push(services, "gc/repo", data) for data in blobs]
    orphan = b"orphan bytes"
    _write_orphan(services, orphan)
    time.sleep(0.01)
    report = _collector(services, grace=0).run(dry_run=True)
    assert report.dry_run
    assert sorted(report.blobs) == sorted(zip(digests, map(len, blobs), strict=True))
    assert report.orphan_files == [(blob_path(_digest(orphan)), len(orphan))]
    assert report.bytes == sum(map(len, blobs)) + len(orphan)
    for digest, data in zip(digests, blobs, strict=True):
        assert services.store.size(digest) == len(data)
        assert _recorded(services, digest)
    assert services.store.size(_digest(orphan)) == len(orphan)
    # The real run removes exactly what the dry run listed.
    real = _collector(services, grace=0).run()
    assert sorted(real.blobs) == sorted(report.blobs)
    assert real.orphan_files == report.orphan_files
    assert real.bytes == report.bytes


def test_expired_uploads_removed(services: Services) -> None:
    status = services.uploads.start("gc/repo")
    appender = services.uploads.append("gc/repo", status.id, None)
    appender.write(b"abandoned")
    appender.finish()
    fresh = services.uploads.start("gc/repo")
    assert _collector(services, grace=0, upload_expiry=3600).run().uploads == []
    time.sleep(0.01)
    # Expiry 0: every session idle before now has expired.
    report = _collector(services, grace=0, upload_expiry=0).run()
    assert sorted(report.uploads) == sorted([status.id, fresh.id])
    assert list(services.store.driver.walk(f"uploads/{status.id}")) == []
    with services.db.read() as conn:
        assert not q.upload_exists(conn, status.id)
    with pytest.raises(BlobUploadUnknown):
        services.uploads.status("gc/repo", status.id)


@contextlib.contextmanager
def _racing(task: Callable[[], object]) -> Iterator[None]:
    """Run `task` in a thread released at the same moment as the body of the with-block."""
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        task()

    worker = threading.Thread(target=run)
    worker.start()
    start.wait()
    try:
        yield
    finally:
        worker.join()


def _write_orphan(services: Services, data: bytes) -> str:
    # What a crash between the rename into place and the database insert leaves behind.
    writer = services.store.driver.writer(blob_path(_digest(data)), resume_at=0)
    writer.write(data)
    writer.commit()
    writer.close()
    return _digest(data)


def test_orphan_files_removed(services: Services) -> None:
    digest = _write_orphan(services, b"crash leftover")
    kept = _push(services, "gc/repo", b"kept: referenced below")
    _push(services, "gc/repo", b"{}")
    _manifest(services, "gc/repo", b"{}", b"kept: referenced below")
    # A fresh orphan is within the grace period (it may be a commit in flight): kept.
    assert _collector(services, grace=3600).run().orphan_files == []
    assert services.store.size(digest) is not None
    time.sleep(0.01)
    report = _collector(services, grace=0).run()
    assert report.orphan_files == [(blob_path(digest), len(b"crash leftover"))]
    assert services.store.size(digest) is None
    assert services.store.size(kept) is not None


def test_orphan_upload_directories_removed(services: Services) -> None:
    writer = services.store.driver.writer(upload_path("no-such-session"), resume_at=0)
    writer.write(b"left by a crash")
    writer.commit()
    writer.close()
    live = services.uploads.start("gc/repo")
    appender = services.uploads.append("gc/repo", live.id, None)
    appender.write(b"live")
    appender.finish()
    time.sleep(0.01)
    report = GarbageCollector(services.db, services.store, 0, 3600).run()
    assert report.orphan_files == []
    report = _collector(services, grace=0, upload_expiry=0).run()
    assert (upload_path("no-such-session"), len(b"left by a crash")) in report.orphan_files
    assert list(services.store.walk_uploads()) == []


def test_cli_dry_run(services: Services, settings: Settings) -> None:
    digest = _push(services, "gc/repo", b"cli garbage")
    services.db.close()
    args = ["gc", "--dry-run", "--grace", "0", "--data-dir", str(settings.data_dir)]
    if settings.database_url:
        args += ["--database-url", settings.database_url]
    time.sleep(0.01)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"blob {digest} {len(b'cli garbage')}" in result.output
    assert (
        f"would remove 0 untagged manifests, 1 blobs, 0 uploads, 0 orphan files: {len(b'cli garbage')} bytes"
        in result.output
    )
    assert services.store.size(digest) == len(b"cli garbage")
    result = CliRunner().invoke(main, args[:1] + args[2:])
    assert result.exit_code == 0, result.output
    assert (
        f"removed 0 untagged manifests, 1 blobs, 0 uploads, 0 orphan files: {len(b'cli garbage')} bytes"
        in result.output
    )
    assert services.store.size(digest) is None
    # Default grace period: nothing that young is touched.
    young_digest = _push(services, "gc/repo", b"young")
    services.db.close()
    young = CliRunner().invoke(main, [a for a in args if a not in {"--grace", "0"}])
    assert young.exit_code == 0, young.output
    assert "0 untagged manifests, 0 blobs" in young.output
    # ...but shown as waiting, rather than as nothing at all.
    assert f"waiting {young_digest} {len(b'young')} (grace period ends in " in young.output
    assert "1 unreferenced blobs (5 bytes) wait out the grace period" in young.output


def test_blob_committed_from_an_old_upload_is_not_an_orphan(services: Services) -> None:
    """A resumable upload whose bytes were written hours ago is committed now: between the rename into
    place and the database insert, the file must not look like an old orphan to a concurrent collection."""
    data = b"written long ago, committed just now"
    status = services.uploads.start("gc/repo")
    appender = services.uploads.append("gc/repo", status.id, None)
    appender.write(data)
    appender.finish()
    two_hours_ago = time.time() - 7200
    os.utime(services.store.driver.local_file(upload_path(status.id)), (two_hours_ago, two_hours_ago))  # type: ignore[arg-type]
    # The rename alone, as `complete` does it just before recording the blob.
    services.store.commit_upload(status.id, _digest(data))
    report = _collector(services, grace=3600).run()
    assert report.orphan_files == []
    assert services.store.size(_digest(data)) == len(data)


def test_push_racing_a_collection_of_the_same_blob(services: Services) -> None:
    """An old, unreferenced blob is pushed again while a collection removes it. Whichever wins, an
    acknowledged push leaves the blob readable: never a record whose bytes the collection deleted."""
    data = b"pushed again while collected"
    digest = _digest(data)
    collector = _collector(services, grace=600)
    for _ in range(20):
        _push(services, "gc/race", data)
        with services.db.write() as conn:
            # Age it past the grace period: it is garbage now.
            conn.execute(update(blobs).where(blobs.c.digest == digest).values(linked_at=0))
        status = services.uploads.start("gc/race")
        appender = services.uploads.append("gc/race", status.id, 0)
        appender.write(data)
        appender.finish()
        with _racing(collector.run):
            services.uploads.complete("gc/race", status.id, parse_digest(digest))
        location = services.blobs.locate("gc/race", digest)
        assert location.size == len(data)
        assert b"".join(services.store.read(digest)) == data


def test_push_racing_the_removal_of_an_orphan_file(services: Services) -> None:
    """A crash left the bytes of X without a record; X is pushed again while a collection removes that
    orphan file. The acknowledged push must keep readable bytes."""
    collector = _collector(services, grace=600)
    for i in range(20):
        data = f"orphaned, then pushed {i}".encode()
        digest = _write_orphan(services, data)
        old = time.time() - 7200
        os.utime(services.store.driver.local_file(blob_path(digest)), (old, old))  # type: ignore[arg-type]
        status = services.uploads.start("gc/orphan")
        appender = services.uploads.append("gc/orphan", status.id, 0)
        appender.write(data)
        appender.finish()
        with _racing(collector.run):
            services.uploads.complete("gc/orphan", status.id, parse_digest(digest))
        assert services.blobs.locate("gc/orphan", digest).size == len(data)
        assert b"".join(services.store.read(digest)) == data


def test_manifest_push_racing_a_collection_of_its_blobs(services: Services) -> None:
    """Layers pushed long ago (past the grace period, still unreferenced) are collected while the manifest
    naming them is pushed: either the push is refused (MANIFEST_BLOB_UNKNOWN) or every blob stays."""
    collector = _collector(services, grace=600)
    accepted = 0
    for i in range(20):
        config, layer = json.dumps({"round": i}).encode(), f"layer of round {i}".encode()
        _push(services, "gc/manifest", config)
        _push(services, "gc/manifest", layer)
        with services.db.write() as conn:
            conn.execute(update(blobs).values(linked_at=0))
        try:
            with _racing(collector.run):
                _manifest(services, "gc/manifest", config, layer, tag=f"r{i}")
        except ManifestBlobUnknown:
            continue
        accepted += 1
        for data in (config, layer):
            assert services.blobs.locate("gc/manifest", _digest(data)).size == len(data)
    assert accepted > 0


def test_index_push_racing_the_deletion_of_a_child(services: Services) -> None:
    """An index is pushed while one of its children is deleted: either the delete wins (the index is
    refused) or the index wins (the delete is refused with 409); never an index with a missing child."""
    name = "gc/index"
    for i in range(20):
        config, layer = json.dumps({"child": i}).encode(), f"child layer {i}".encode()
        _push(services, name, config)
        _push(services, name, layer)
        child = _manifest(services, name, config, layer, tag=f"c{i}")
        content = services.manifests.get(name, parse_digest(child)).content
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": len(content)}]}
        ).encode()  # fmt: skip
        deleted: list[bool] = []

        def delete_child(digest: str = child, result: list[bool] = deleted) -> None:
            try:
                services.manifests.delete(name, parse_digest(digest))
                result.append(True)
            except ManifestReferenced:
                result.append(False)

        try:
            with _racing(delete_child):
                services.manifests.put(name, f"i{i}", index, OCI_INDEX)
            pushed = True
        except ManifestBlobUnknown:
            pushed = False
        assert deleted != [] and pushed != deleted[0], (pushed, deleted)
        if pushed:
            assert services.manifests.get(name, parse_digest(child)).content == content
