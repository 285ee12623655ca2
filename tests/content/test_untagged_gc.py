"""Untagged manifests: when their clock starts, what keeps them, and the collector removing them."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from dockyard.app import Services
from dockyard.cli import main
from dockyard.config import ConfigError, Settings, load_settings
from dockyard.content.digests import digest_of as _digest
from dockyard.content.digests import parse_digest
from dockyard.content.errors import ManifestUnknown
from dockyard.content.gc import GarbageCollector, GcReport
from dockyard.content.manifest_format import OCI_INDEX, OCI_MANIFEST
from dockyard.db.schema import manifests
from support.pushing import push_blob as _blob

EMPTY = b"{}"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": _digest(data), "size": len(data)}


def _image(services: Services, name: str, reference: str, label: str, subject: bytes | None = None) -> bytes:
    """Push a config and a layer unique to `label`, and a manifest naming them; the manifest's bytes."""
    config, layer = json.dumps({"label": label}).encode(), f"layer of {label}".encode()
    _blob(services, name, config)
    _blob(services, name, layer)
    document: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(CONFIG, config),
        "layers": [_descriptor(LAYER, layer)],
    }
    if subject is not None:
        document["subject"] = _descriptor(OCI_MANIFEST, subject)
    content = json.dumps(document).encode()
    services.manifests.put(name, _ref(reference, content), content, OCI_MANIFEST)
    return content


def _ref(reference: str, content: bytes) -> str | object:
    """A tag as given, or '@' for the manifest's own digest."""
    return parse_digest(_digest(content)) if reference == "@" else reference


def _index(services: Services, name: str, reference: str, children: list[bytes]) -> bytes:
    content = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [_descriptor(OCI_MANIFEST, c) for c in children],
        }
    ).encode()
    services.manifests.put(name, _ref(reference, content), content, OCI_INDEX)
    return content


def _collect(services: Services, retention: int | None, dry_run: bool = False, grace: int = 0) -> GcReport:
    time.sleep(0.01)  # the cutoff is strictly after what the test just did
    return GarbageCollector(services.db, services.store, grace, 3600, retention).run(dry_run=dry_run)


def _present(services: Services, name: str, content: bytes) -> bool:
    try:
        services.manifests.get(name, parse_digest(_digest(content)))
    except ManifestUnknown:
        return False
    return True


def _untagged_at(services: Services, content: bytes) -> float | None:
    with services.db.read() as conn:
        value: float | None = conn.execute(
            select(manifests.c.untagged_at).where(manifests.c.digest == _digest(content))
        ).scalar_one()
    return value


def _layer(label: str) -> str:
    return _digest(f"layer of {label}".encode())


def test_repushed_tag_leaves_only_the_current_image(services: Services) -> None:
    name = "untagged/latest"
    pushed = [_image(services, name, "latest", f"build {i}") for i in range(6)]
    report = _collect(services, retention=0)
    assert sorted(report.manifests) == sorted((name, _digest(c)) for c in pushed[:-1])
    assert [_present(services, name, c) for c in pushed] == [False] * 5 + [True]
    for i in range(5):
        assert services.store.size(_layer(f"build {i}")) is None
    assert services.store.size(_layer("build 5")) is not None
    assert services.store.size(_digest(json.dumps({"label": "build 5"}).encode())) is not None
    # Nothing more to do.
    again = _collect(services, retention=0)
    assert again.manifests == [] and again.blobs == []


def test_retention_counts_from_the_moment_the_last_tag_left(services: Services) -> None:
    name = "untagged/clock"
    first = _image(services, name, "v1", "one")
    services.manifests.put(name, "v1-copy", first, OCI_MANIFEST)  # a second tag on the same manifest
    assert _untagged_at(services, first) is None
    _image(services, name, "v1", "two")
    assert _untagged_at(services, first) is None  # still tagged v1-copy
    before = time.time()
    services.manifests.delete(name, "v1-copy")
    untagged_at = _untagged_at(services, first)
    assert untagged_at is not None and untagged_at >= before
    assert _collect(services, retention=3600).manifests == []
    assert _present(services, name, first)
    # Tagged again: the clock stops, and nothing removes it.
    services.manifests.put(name, "back", first, OCI_MANIFEST)
    assert _untagged_at(services, first) is None
    assert _collect(services, retention=0).manifests == []


def test_push_by_digest_is_untagged_from_its_push(services: Services) -> None:
    name = "untagged/bydigest"
    before = time.time()
    content = _image(services, name, "@", "by digest")
    untagged_at = _untagged_at(services, content)
    assert untagged_at is not None and untagged_at >= before
    assert _collect(services, retention=3600).manifests == []
    assert [d for _, d in _collect(services, retention=0).manifests] == [_digest(content)]


def test_the_settings_zero_keeps_untagged_manifests(services: Services) -> None:
    name = "untagged/keep"
    old = _image(services, name, "v1", "old")
    _image(services, name, "v1", "new")
    assert _collect(services, retention=None).manifests == []
    assert _present(services, name, old)
    assert services.store.size(_layer("old")) is not None


def test_children_of_a_tagged_index_stay_and_go_with_it(services: Services) -> None:
    name = "untagged/index"
    amd, arm = _image(services, name, "@", "amd64"), _image(services, name, "@", "arm64")
    index = _index(services, name, "v1", [amd, arm])
    assert _collect(services, retention=0).manifests == []
    assert _present(services, name, amd) and _present(services, name, arm)
    # The tag moves to a new index: the old one and then its children go in the same run.
    _index(services, name, "v1", [_image(services, name, "@", "riscv")])
    removed = {d for _, d in _collect(services, retention=0).manifests}
    assert removed == {_digest(index), _digest(amd), _digest(arm)}
    assert services.store.size(_layer("amd64")) is None
    assert services.store.size(_layer("riscv")) is not None


def test_child_shared_with_an_index_of_another_repository_is_not_kept_by_it(services: Services) -> None:
    """A parent counts only in its own repository: indexes never reach across."""
    lonely = _image(services, "untagged/a", "@", "shared child")
    other = _image(services, "untagged/b", "@", "shared child")
    _index(services, "untagged/b", "v1", [other])
    removed = _collect(services, retention=0).manifests
    assert removed == [("untagged/a", _digest(lonely))]


def test_referrer_stays_while_its_subject_does(services: Services) -> None:
    name = "untagged/signed"
    image = _image(services, name, "v1", "signed image")
    signature = _image(services, name, "@", "signature", subject=image)
    assert _collect(services, retention=0).manifests == []
    assert _present(services, name, signature)
    # The image loses its tag: it goes, and its signature with it.
    _image(services, name, "v1", "next image")
    removed = {d for _, d in _collect(services, retention=0).manifests}
    assert removed == {_digest(image), _digest(signature)}
    assert services.store.size(_layer("signature")) is None


def test_referrer_to_a_subject_never_pushed_goes(services: Services) -> None:
    """A referrer may be pushed before its subject: it is kept only by a subject actually present."""
    name = "untagged/dangling"
    ghost = b'{"never": "pushed"}'
    dangling = _image(services, name, "@", "dangling signature", subject=ghost)
    assert [d for _, d in _collect(services, retention=0).manifests] == [_digest(dangling)]


def test_dry_run_lists_manifests_their_blobs_and_waiting_blobs(services: Services) -> None:
    name = "untagged/dry"
    old = _image(services, name, "v1", "old")
    _image(services, name, "v1", "new")
    waiting = _blob(services, name, b"unreferenced and young")
    report = _collect(services, retention=0, dry_run=True, grace=3600)
    assert report.manifests == [(name, _digest(old))]
    # The old image's blobs were linked a moment ago: they wait out the grace period, as the young blob.
    assert {d for d, _, _ in report.waiting_blobs} == {
        waiting,
        _layer("old"),
        _digest(json.dumps({"label": "old"}).encode()),
    }
    assert all(ready > time.time() + 3000 for _, _, ready in report.waiting_blobs)
    assert report.blobs == []
    # With no grace period, the dry run names the blobs the manifest leaves behind.
    report = _collect(services, retention=0, dry_run=True, grace=0)
    assert {d for d, _ in report.blobs} == {
        waiting,
        _layer("old"),
        _digest(json.dumps({"label": "old"}).encode()),
    }
    assert _present(services, name, old)
    assert services.store.size(_layer("old")) is not None


def test_index_pushed_after_a_collection_of_its_untagged_children(services: Services) -> None:
    """A collection with retention 0 may remove children pushed for an index not pushed yet: the index is
    then refused (never stored with missing children), and pushing the children again works."""
    name = "untagged/race"
    child = _image(services, name, "@", "child")
    _collect(services, retention=0)
    with pytest.raises(Exception, match="push it first"):
        _index(services, name, "v1", [child])
    _image(services, name, "@", "child")
    _index(services, name, "v1", [child])
    assert _present(services, name, child)


def test_cli_untagged_retention(services: Services, settings: Settings) -> None:
    name = "untagged/cli"
    old = _image(services, name, "v1", "old")
    _image(services, name, "v1", "new")
    services.db.close()
    args = ["gc", "--data-dir", str(settings.data_dir)]
    if settings.database_url:
        args += ["--database-url", settings.database_url]
    runner = CliRunner()
    kept = runner.invoke(main, [*args, "--untagged-retention", "7d", "--dry-run"])
    assert kept.exit_code == 0, kept.output
    assert "would remove 0 untagged manifests" in kept.output
    dry = runner.invoke(main, [*args, "--untagged-retention", "0", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"manifest {name}@{_digest(old)}" in dry.output
    assert f"waiting {_layer('old')}" in dry.output
    assert "3 unreferenced blobs" not in dry.output
    assert "wait out the grace period" in dry.output
    done = runner.invoke(main, [*args, "--untagged-retention", "0", "--grace", "0"])
    assert done.exit_code == 0, done.output
    assert "removed 1 untagged manifests, 2 blobs" in done.output
    assert services.store.size(_layer("old")) is None


@pytest.mark.parametrize("value", ["7", "90m", "12h", "7d", "2w"])
def test_cli_durations(value: str) -> None:
    from dockyard.cli.units import parse_duration

    expected = {"7": 7, "90m": 5400, "12h": 43200, "7d": 604800, "2w": 1209600}[value]
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", ["", "-1", "7x", "1.5d", "d", "٣d", "9999999999", "7 d"])
def test_cli_rejects_bad_durations(value: str) -> None:
    result = CliRunner().invoke(main, ["gc", "--dry-run", "--untagged-retention", value])
    assert result.exit_code == 2
    assert "is not a duration" in result.output


def test_retagging_racing_collections(services: Services) -> None:
    """A tag moving back and forth between two manifests (each push re-storing the manifest it names)
    while collections with retention 0 run: every push succeeds, and the tag always finds its manifest."""
    name = "untagged/race-tag"
    first, second = _image(services, name, "t", "first"), _image(services, name, "t", "second")
    failures: list[BaseException] = []
    stop = threading.Event()

    def collect() -> None:
        try:
            while not stop.is_set():
                GarbageCollector(services.db, services.store, 3600, 3600, 0).run()
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    collector = threading.Thread(target=collect)
    collector.start()
    try:
        for i in range(30):
            content = first if i % 2 else second
            services.manifests.put(name, "t", content, OCI_MANIFEST)
            assert services.manifests.get(name, "t").content == content
    finally:
        stop.set()
        collector.join(timeout=60)
    assert failures == []
    assert services.manifests.get(name, "t").content == first


def test_concurrent_moves_of_one_tag_leave_every_other_manifest_untagged(services: Services) -> None:
    """Requests moving the same tag at once: each sees where the previous one left it, so no manifest the
    tag left keeps a stopped clock (it would never be collected)."""
    name = "untagged/moves"
    contents = [_image(services, name, f"start{i}", f"move {i}") for i in range(4)]
    failures: list[BaseException] = []

    def mover(offset: int) -> None:
        try:
            for i in range(12):
                content = contents[(offset + i) % len(contents)]
                services.manifests.put(name, "t", content, OCI_MANIFEST)
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    for i in range(len(contents)):
        services.manifests.delete(name, f"start{i}")
    threads = [threading.Thread(target=mover, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    current = services.manifests.get(name, "t").content
    for content in contents:
        assert (_untagged_at(services, content) is None) == (content == current)


def test_retention_setting_bounds(tmp_path: Path) -> None:
    assert load_settings(data_dir=tmp_path).gc_untagged_retention_seconds == 7 * 24 * 3600
    keep = load_settings(data_dir=tmp_path, gc_untagged_retention_seconds=0)
    assert keep.gc_untagged_retention_seconds == 0
    with pytest.raises(ConfigError, match="gc_untagged_retention_seconds"):
        load_settings(data_dir=tmp_path, gc_untagged_retention_seconds=-1)
