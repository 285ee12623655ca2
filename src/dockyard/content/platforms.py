"""The platform of an image (`os/architecture[/variant]`), read from its configuration once, when the
manifest is pushed, and kept with the manifest: a listing of tags then shows it without opening a blob per
row."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from dockyard.content.manifest_format import IMAGE_MANIFESTS, ParsedManifest
from dockyard.storage.blobstore import BlobStore
from dockyard.storage.driver import StorageError

# Config media types of runnable images (as scanning/image.py, which content/ does not import).
IMAGE_CONFIGS = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)
# An image configuration is a few kilobytes; one larger than this is not read for its platform.
MAX_PLATFORM_CONFIG_BYTES = 1024 * 1024
# Each part as Go names them (GOOS, GOARCH, a variant such as v7), bounded for the column (64).
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}")


def platform_of_config(data: bytes) -> str | None:
    """`os/architecture[/variant]` of an image configuration, or None when it does not say (or says
    something that is not a platform name)."""
    try:
        config = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(config, dict):
        return None
    parts = [config.get("os"), config.get("architecture")]
    if config.get("variant"):
        parts.append(config.get("variant"))
    if not all(isinstance(part, str) and _PART.fullmatch(part) for part in parts):
        return None
    return "/".join(str(part) for part in parts)


def _bounded(chunks: Iterable[bytes], limit: int) -> bytes | None:
    read = bytearray()
    for chunk in chunks:
        read += chunk
        if len(read) > limit:
            return None
    return bytes(read)


def pushed_platform(store: BlobStore, parsed: ParsedManifest) -> str | None:
    """The platform of a pushed image manifest, from its config blob; None for an index, an artifact, a
    config too large or not stored (the push then fails on its own terms, or shows no platform)."""
    if parsed.media_type not in IMAGE_MANIFESTS or not parsed.blobs:
        return None
    config = parsed.blobs[0]
    if config.media_type not in IMAGE_CONFIGS or config.size > MAX_PLATFORM_CONFIG_BYTES:
        return None
    try:
        data = _bounded(store.read(config.digest), MAX_PLATFORM_CONFIG_BYTES)
    except (StorageError, OSError):
        return None
    return platform_of_config(data) if data is not None else None
