"""Scan targets of stored manifests and their layers streamed from the blob store, on images pushed through
the real upload and manifest services (SQLite and a filesystem store in a temporary data directory)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_images import (
    EMPTY,
    OS_DEBIAN,
    REPO,
    SITE,
    TAR_GZIP,
    TAR_PLAIN,
    TAR_ZSTD,
    Pushed,
    descriptor,
    dist_info,
    push_image,
    push_manifest,
    push_multiarch,
    registry,
    size_of,
)
from scan_support import tar_bytes

from dockyard.app import Services
from dockyard.content.errors import ManifestUnknown
from dockyard.content.manifest_format import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from dockyard.scanning.errors import LayerFormatError, LimitExceededError, ScanError
from dockyard.scanning.image import (
    BlobReader,
    ImageTarget,
    open_layers,
    plan_scan,
    scan_image,
    scan_targets,
)
from dockyard.scanning.layers import Limits
from dockyard.scanning.packages import DEB
from support.pushing import push_blob


@pytest.fixture
def services(tmp_path: Path) -> Services:
    return registry(tmp_path)


@pytest.fixture
def pushed(services: Services) -> Pushed:
    return push_multiarch(services)


def test_index_gives_one_target_per_platform_image(services: Services, pushed: Pushed) -> None:
    plan = plan_scan(services.manifests, REPO, pushed.index)
    assert [(t.manifest_digest, t.platform) for t in plan.targets] == [
        (pushed.amd64, "linux/amd64"),
        (pushed.arm64, "linux/arm64/v8"),
    ]
    amd64, arm64 = plan.targets
    assert amd64.layers == ((pushed.amd64_layers[0], TAR_GZIP), (pushed.amd64_layers[1], TAR_PLAIN))
    assert arm64.layers == ((pushed.arm64_layers[0], TAR_GZIP), (pushed.arm64_layers[1], TAR_ZSTD))
    assert amd64.config_digest == pushed.amd64_config
    assert len(amd64.notes) == 1 and pushed.foreign in amd64.notes[0] and "foreign" in amd64.notes[0]
    assert arm64.notes == ()
    skipped = {s.manifest_digest: s.reason for s in plan.skipped}
    assert skipped == {
        pushed.signature: f"artifact with config {EMPTY}",
        pushed.attestation: "attestation-manifest of another manifest",
    }
    assert scan_targets(services.manifests, REPO, pushed.index) == list(plan.targets)


def test_image_manifest_on_its_own_has_no_platform(services: Services, pushed: Pushed) -> None:
    [target] = scan_targets(services.manifests, REPO, pushed.arm64)
    assert target.manifest_digest == pushed.arm64
    assert target.platform is None
    assert len(target.layers) == 2


def test_artifacts_and_unknown_platforms_are_skipped(services: Services, pushed: Pushed) -> None:
    signature = plan_scan(services.manifests, REPO, pushed.signature)
    assert signature.targets == ()
    assert [s.reason for s in signature.skipped] == [f"artifact with config {EMPTY}"]
    # An image config but only non-tar layers: an attestation or cosign-style signature, nothing to scan.
    attestation = plan_scan(services.manifests, REPO, pushed.attestation)
    assert attestation.targets == ()
    assert attestation.skipped[0].reason.startswith("no filesystem layers: ")
    assert "application/vnd.in-toto+json" in attestation.skipped[0].reason
    # An index entry without a platform cannot be told apart from attestations; it is left out.
    size = size_of(services, pushed.amd64)
    bare = push_manifest(
        services,
        REPO,
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, pushed.amd64, size)],
        },
    )
    plan = plan_scan(services.manifests, REPO, bare)
    assert plan.targets == ()
    assert [(s.manifest_digest, s.reason) for s in plan.skipped] == [(pushed.amd64, "no known platform")]


def test_nested_index_children_keep_their_platform(services: Services, pushed: Pushed) -> None:
    size = size_of(services, pushed.index)
    outer = push_manifest(
        services,
        REPO,
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_INDEX, pushed.index, size)],
        },
    )
    targets = scan_targets(services.manifests, REPO, outer)
    assert [t.platform for t in targets] == ["linux/amd64", "linux/arm64/v8"]


def test_docker_manifest_with_non_tar_layer_keeps_a_note(services: Services) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    config_digest = push_blob(services, REPO, config)
    blob = tar_bytes([("file", "/etc/os-release", OS_DEBIAN)])
    layer_digest = push_blob(services, REPO, blob)
    extra = b"not a filesystem"
    extra_digest = push_blob(services, REPO, extra)
    digest = push_manifest(
        services,
        REPO,
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor(
                "application/vnd.docker.container.image.v1+json", config_digest, len(config)
            ),
            "layers": [
                descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", layer_digest, len(blob)),
                descriptor("application/vnd.example.data", extra_digest, len(extra)),
            ],
        },
    )
    [target] = scan_targets(services.manifests, REPO, digest)
    assert target.layers == ((layer_digest, "application/vnd.docker.image.rootfs.diff.tar.gzip"),)
    assert target.notes == (
        f"layer {extra_digest} (application/vnd.example.data) not scanned: not a filesystem tar",
    )
    inventory = scan_image(services.store, target)
    assert inventory.os is not None and inventory.os.id == "debian"
    assert inventory.packages == ()


def test_missing_and_invalid_references(services: Services, pushed: Pushed) -> None:
    with pytest.raises(ManifestUnknown):
        plan_scan(services.manifests, REPO, "sha256:" + "0" * 64)
    with pytest.raises(ScanError, match="not a valid digest"):
        plan_scan(services.manifests, REPO, "latest")


def test_inventory_per_platform(services: Services, pushed: Pushed) -> None:
    amd64, arm64 = scan_targets(services.manifests, REPO, pushed.index)
    for target, arch, layers, requests_version in (
        (amd64, "amd64", pushed.amd64_layers, "2.31.0"),
        (arm64, "arm64", pushed.arm64_layers, "2.25.0"),
    ):
        inventory = scan_image(services.store, target, Limits())
        assert inventory.os is not None
        assert (inventory.os.id, inventory.os.version_id) == ("debian", "12")
        found = {(p.ecosystem, p.name, p.version, p.layer_digest, p.path) for p in inventory.packages}
        assert found == {
            (DEB, "libc6", "2.36-9+deb12u4", layers[0], "/var/lib/dpkg/status"),
            (DEB, "zlib1g", "1:1.2.13.dfsg-1", layers[0], "/var/lib/dpkg/status"),
            (
                "PyPI",
                "requests",
                requests_version,
                layers[1],
                f"{SITE}/requests-{requests_version}.dist-info/METADATA",
            ),
        }
        libc = next(p for p in inventory.packages if p.name == "libc6")
        assert libc.purl == f"pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch={arch}&distro=debian-12"
        assert libc.source_name == "glibc"


def test_limits_are_applied_to_stored_layers(services: Services, pushed: Pushed) -> None:
    [target] = scan_targets(services.manifests, REPO, pushed.amd64)
    with pytest.raises(LimitExceededError):
        scan_image(services.store, target, Limits(max_layer_bytes=1024))


def test_corrupt_layer_is_a_scan_error(services: Services) -> None:
    garbage = b"\x1f\x8b" + b"not really gzip" * 10
    digest, _, _ = push_image(services, REPO, "amd64", [(garbage, TAR_GZIP)])
    [target] = scan_targets(services.manifests, REPO, digest)
    with pytest.raises(LayerFormatError, match="not a readable tar stream"):
        scan_image(services.store, target)


class _Store:
    """A blob source handing out small chunks and recording which streams were closed."""

    def __init__(self, blobs: dict[str, bytes], chunk: int) -> None:
        self.blobs = blobs
        self.chunk = chunk
        self.opened: list[str] = []
        self.closed: list[str] = []

    def read(self, digest: str, offset: int = 0) -> Iterator[bytes]:
        self.opened.append(digest)
        data = self.blobs[digest]
        try:
            for start in range(offset, len(data), self.chunk):
                yield data[start : start + self.chunk]
        finally:
            self.closed.append(digest)


def test_open_layers_streams_in_chunks_and_closes_each_layer() -> None:
    first = tar_bytes([("file", "/etc/os-release", OS_DEBIAN)])
    second = tar_bytes([dist_info("idna", "3.6")], "zstd")
    store = _Store({"sha256:" + "1" * 64: first, "sha256:" + "2" * 64: second}, chunk=3)
    target = ImageTarget(
        "sha256:" + "9" * 64,
        None,
        (("sha256:" + "1" * 64, TAR_GZIP), ("sha256:" + "2" * 64, TAR_ZSTD)),
        "sha256:" + "8" * 64,
    )
    layers = open_layers(store, target)
    layer = next(layers)
    assert (layer.digest, layer.media_type) == ("sha256:" + "1" * 64, TAR_GZIP)
    # Chunks of 3 bytes: the buffered stream still gives the 4 magic bytes in one read.
    assert layer.stream.read(4) == first[:4]
    assert layer.stream.read(10) == first[4:14]
    assert store.closed == []
    # Moving on closes the layer left half read.
    layer = next(layers)
    assert store.closed == ["sha256:" + "1" * 64]
    assert layer.stream.read(4) == second[:4]
    layers.close()
    assert store.closed == ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
    # The whole scan through tiny chunks finds the same content.
    store = _Store(store.blobs, chunk=5)
    inventory = scan_image(store, target)
    assert inventory.os is not None and inventory.os.id == "debian"
    assert [(p.name, p.version) for p in inventory.packages] == [("idna", "3.6")]
    assert store.closed == store.opened == [d for d, _ in target.layers]


def test_blob_reader_fills_buffers_across_chunks_and_closes_its_source() -> None:
    closed = []

    def chunks() -> Iterator[bytes]:
        try:
            yield from (b"ab", b"", b"cdef", b"g")
        finally:
            closed.append(True)

    reader = BlobReader(chunks())
    buffer = bytearray(3)
    # A read takes what the current chunk has left; an empty chunk is passed over, not taken for the end.
    assert reader.readinto(buffer) == 2 and buffer[:2] == b"ab"
    assert reader.readinto(buffer) == 3 and buffer == bytearray(b"cde")
    assert reader.read(1) == b"f"
    # Closed before the source is used up: the source is closed too (the store's file released).
    reader.close()
    assert closed == [True]
    with pytest.raises(ValueError):
        reader.read(1)
    whole = BlobReader(iter([b"ab", b"", b"cdef", b"g"]))
    assert whole.read() == b"abcdefg"
    assert whole.read(10) == b""
