"""What to scan for a stored manifest, and its layers streamed from the blob store.

`plan_scan` turns a manifest digest into `ImageTarget`s: an image manifest is one target; an index (or
Docker manifest list) is one target per child image with its platform, leaving out attestations,
children of unknown platform, nested artifacts (signatures, SBOMs: a config that is not an image config)
and anything else that has no filesystem to scan. `open_layers` streams a target's layers with bounded
memory; `scan_image` reads them into an `Inventory`.

Manifests were validated when pushed, but platform objects and layer `urls` were not, so every field read
here is checked and a document of the wrong shape is a `ScanError`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dockyard.content.digests import Digest, parse_digest
from dockyard.content.errors import ContentError
from dockyard.content.manifest_format import IMAGE_MANIFESTS, INDEXES
from dockyard.content.manifests import Manifest
from dockyard.scanning.detect import DETECTORS, Detector
from dockyard.scanning.errors import ScanError
from dockyard.scanning.inventory import Inventory, scan_layers
from dockyard.scanning.layers import Layer, Limits

__all__ = [
    "IMAGE_CONFIGS",
    "TAR_LAYERS",
    "BlobReader",
    "BlobSource",
    "ImageTarget",
    "ManifestGetter",
    "ScanPlan",
    "Skipped",
    "open_layers",
    "plan_scan",
    "scan_image",
    "scan_targets",
]

# Config media types of runnable images; any other config makes the manifest an artifact.
IMAGE_CONFIGS = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)
# Layer media types holding a (possibly compressed) tar of the filesystem; the non-distributable OCI
# types count too, since a registry may hold such blobs when the push carried no `urls`.
TAR_LAYERS = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    }
)
# Buildx marks its provenance and SBOM manifests in an index with this annotation.
_REFERENCE_TYPE = "vnd.docker.reference.type"
# Indexes of indexes are legal but rare; the bound keeps a hostile chain from going on for ever.
_MAX_DEPTH = 4
_READ_BUFFER = 1 << 16


class ManifestGetter(Protocol):
    """What `plan_scan` needs of `ManifestService`: a manifest of a repository by digest."""

    def get(self, name: str, reference: Digest | str) -> Manifest:
        """The stored manifest with its exact bytes."""
        ...


class BlobSource(Protocol):
    """What `open_layers` needs of `BlobStore`: a blob's bytes as an iterator of chunks."""

    def read(self, digest: str, offset: int = 0) -> Iterator[bytes]:
        """Stream a blob."""
        ...


@dataclass(frozen=True)
class ImageTarget:
    """One runnable image to scan: its manifest, platform (`os/architecture[/variant]`, None for an image
    pushed on its own), filesystem layers bottom first as (digest, media type), config blob, and notes on
    layers left out (foreign or not a tar)."""

    manifest_digest: str
    platform: str | None
    layers: tuple[tuple[str, str], ...]
    config_digest: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """A manifest under the requested one that has nothing to scan, and why."""

    manifest_digest: str
    reason: str


@dataclass(frozen=True)
class ScanPlan:
    """The targets found for a manifest and the manifests left out."""

    targets: tuple[ImageTarget, ...]
    skipped: tuple[Skipped, ...]


def _document(manifest: Manifest) -> dict[str, Any]:
    try:
        document = json.loads(manifest.content)
    except ValueError as exc:
        raise ScanError(f"manifest {manifest.digest} is not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise ScanError(f"manifest {manifest.digest} is not a JSON object")
    return document


def _objects(document: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    values = document.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
        raise ScanError(f"manifest {where}: {key} is not a list of objects")
    return values


def _string(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ScanError(f"manifest {where}: {what} is not a non-empty string")
    return value


def _platform(descriptor: dict[str, Any], where: str) -> str | None:
    """`os/architecture[/variant]` of an index entry, or None when it has none or an unknown one."""
    platform = descriptor.get("platform")
    if platform is None:
        return None
    if not isinstance(platform, dict):
        raise ScanError(f"manifest {where}: platform is not an object")
    parts = [platform.get("os"), platform.get("architecture")]
    if not all(isinstance(p, str) and p and p != "unknown" for p in parts):
        return None
    variant = platform.get("variant")
    if isinstance(variant, str) and variant:
        parts.append(variant)
    return "/".join(str(p) for p in parts)


def _image(manifest: Manifest, platform: str | None) -> ImageTarget | str:
    """The target of an image manifest, or why it has none."""
    document = _document(manifest)
    config = document.get("config")
    if not isinstance(config, dict):
        raise ScanError(f"manifest {manifest.digest}: config is not an object")
    config_type = _string(config.get("mediaType"), "config.mediaType", manifest.digest)
    if config_type not in IMAGE_CONFIGS:
        return f"artifact with config {config_type}"
    layers: list[tuple[str, str]] = []
    notes: list[str] = []
    for descriptor in _objects(document, "layers", manifest.digest):
        digest = _string(descriptor.get("digest"), "layer digest", manifest.digest)
        media_type = _string(descriptor.get("mediaType"), "layer mediaType", manifest.digest)
        if descriptor.get("urls"):
            # Foreign layers live elsewhere (Windows base layers); the registry does not hold their bytes.
            notes.append(f"foreign layer {digest} ({media_type}) not scanned: its bytes are not stored here")
        elif media_type not in TAR_LAYERS:
            notes.append(f"layer {digest} ({media_type}) not scanned: not a filesystem tar")
        else:
            layers.append((digest, media_type))
    if notes and not layers:
        # Signatures and attestations stored as image manifests (cosign) carry only non-tar layers.
        return "no filesystem layers: " + "; ".join(notes)
    return ImageTarget(
        manifest.digest,
        platform,
        tuple(layers),
        _string(config.get("digest"), "config digest", manifest.digest),
        tuple(notes),
    )


def _walk(
    manifests: ManifestGetter,
    name: str,
    manifest: Manifest,
    platform: str | None,
    depth: int,
    targets: list[ImageTarget],
    skipped: list[Skipped],
) -> None:
    """Add the targets under `manifest` to `targets` and what is left out to `skipped`, in index order."""
    if manifest.media_type in IMAGE_MANIFESTS:
        found = _image(manifest, platform)
        if isinstance(found, str):
            skipped.append(Skipped(manifest.digest, found))
        else:
            targets.append(found)
        return
    if manifest.media_type not in INDEXES:
        skipped.append(Skipped(manifest.digest, f"media type {manifest.media_type} is not scanned"))
        return
    if depth >= _MAX_DEPTH:
        skipped.append(Skipped(manifest.digest, f"index nested more than {_MAX_DEPTH} deep"))
        return
    seen: set[tuple[str, str | None]] = set()
    for descriptor in _objects(_document(manifest), "manifests", manifest.digest):
        digest = _string(descriptor.get("digest"), "child digest", manifest.digest)
        annotations = descriptor.get("annotations")
        if isinstance(annotations, dict) and annotations.get(_REFERENCE_TYPE):
            skipped.append(Skipped(digest, f"{annotations[_REFERENCE_TYPE]} of another manifest"))
            continue
        child_platform = _platform(descriptor, manifest.digest)
        media_type = descriptor.get("mediaType")
        if child_platform is None and media_type not in INDEXES:
            skipped.append(Skipped(digest, "no known platform"))
            continue
        if (digest, child_platform) in seen:
            continue
        seen.add((digest, child_platform))
        try:
            reference = parse_digest(digest)
        except ContentError as exc:
            raise ScanError(f"manifest {manifest.digest}: child digest {digest!r} is invalid") from exc
        child = manifests.get(name, reference)
        _walk(manifests, name, child, child_platform or platform, depth + 1, targets, skipped)


def plan_scan(manifests: ManifestGetter, name: str, digest: str) -> ScanPlan:
    """The images to scan for manifest `digest` of repository `name`, and the manifests left out.

    Raises `ScanError` on a stored manifest of the wrong shape, and what `manifests.get` raises
    (`ManifestUnknown`, `NameUnknown`) when a manifest is missing.
    """
    targets: list[ImageTarget] = []
    skipped: list[Skipped] = []
    try:
        reference = parse_digest(digest)
    except ContentError as exc:
        raise ScanError(f"{digest!r} is not a valid digest") from exc
    _walk(manifests, name, manifests.get(name, reference), None, 0, targets, skipped)
    return ScanPlan(tuple(targets), tuple(skipped))


def scan_targets(manifests: ManifestGetter, name: str, digest: str) -> list[ImageTarget]:
    """The images to scan for manifest `digest` of repository `name` (see `plan_scan`)."""
    return list(plan_scan(manifests, name, digest).targets)


class BlobReader(io.RawIOBase):
    """A read-only raw stream over a blob's chunk iterator; holds at most one chunk."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill `buffer` from the current chunk, taking the next one when it is used up; 0 at the end."""
        if self.closed:
            raise ValueError("read of a closed blob stream")
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        """Close the chunk iterator too, so the store releases its file or connection now."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        self._pending = memoryview(b"")
        super().close()


def open_layers(store: BlobSource, target: ImageTarget) -> Generator[Layer]:
    """The target's layers, bottom first, each streamed from `store` and closed once the next is asked
    for (or the iteration ends)."""
    for digest, media_type in target.layers:
        # Buffered so that a short read of the raw stream never hides the magic bytes of the first read.
        with io.BufferedReader(BlobReader(store.read(digest)), _READ_BUFFER) as stream:
            yield Layer(digest, stream, media_type)


def scan_image(
    store: BlobSource,
    target: ImageTarget,
    limits: Limits | None = None,
    detectors: Sequence[Detector] = DETECTORS,
) -> Inventory:
    """The inventory of one target, its layers read once from `store`; hostile layers raise `ScanError`."""
    layers = open_layers(store, target)
    try:
        return scan_layers(layers, limits, detectors)
    finally:
        # Close the layer being read even when the scan stops early on an error.
        layers.close()
