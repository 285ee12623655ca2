"""Parsing and validating pushed manifests: their kind, what they reference, what they say of themselves."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.content.digests import parse_digest
from dockyard.content.errors import ContentError, ManifestInvalid, Unsupported

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_MEDIA_TYPES = IMAGE_MANIFESTS | INDEXES
# Clients send these when they do not name the kind; the document's own mediaType (or shape) decides.
# Media types are stored in columns of this size (db/schema.py).
MAX_MEDIA_TYPE_LENGTH = 255
_GENERIC_CONTENT_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain"})


@dataclass(frozen=True)
class Descriptor:
    """A validated content descriptor."""

    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class ParsedManifest:
    """What the registry needs to know about a pushed manifest."""

    media_type: str
    blobs: tuple[Descriptor, ...]
    children: tuple[Descriptor, ...]
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str] = field(default_factory=dict)


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{where} must be an object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestInvalid(f"{where}.mediaType must be a non-empty string")
    _check_media_type(media_type, f"{where}.mediaType")
    if not isinstance(digest, str):
        raise ManifestInvalid(f"{where}.digest must be a string")
    try:
        parse_digest(digest)
    except ContentError as exc:
        raise ManifestInvalid(f"{where}.digest: {exc.message}") from exc
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ManifestInvalid(f"{where}.size must be a non-negative integer")
    return Descriptor(media_type, digest, size)


def _check_media_type(value: str, where: str) -> None:
    """A media type is stored and compared as text: bounded, without control characters (NUL above all)."""
    if len(value) > MAX_MEDIA_TYPE_LENGTH or not value.isprintable():
        raise ManifestInvalid(
            f"{where} must be at most {MAX_MEDIA_TYPE_LENGTH} characters without control characters"
        )


def _descriptors(
    document: dict[str, Any], key: str, *, required: bool
) -> list[tuple[Descriptor, dict[str, Any]]]:
    values = document.get(key)
    if values is None and not required:
        return []
    if not isinstance(values, list):
        raise ManifestInvalid(f"{key} must be a list")
    return [(_descriptor(v, f"{key}[{i}]"), v) for i, v in enumerate(values)]


def _media_type(content_type: str, document: dict[str, Any]) -> str:
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid("mediaType must be a string")
    header = content_type.split(";", 1)[0].strip().lower()
    if header in DOCKER_SCHEMA1 or declared in DOCKER_SCHEMA1:
        raise Unsupported("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    if header not in _GENERIC_CONTENT_TYPES:
        if header not in MANIFEST_MEDIA_TYPES:
            raise ManifestInvalid(f"unsupported manifest media type {header!r}")
        if declared is not None and declared != header:
            raise ManifestInvalid(f"mediaType {declared!r} does not match Content-Type {header!r}")
        return header
    if declared is not None:
        if declared not in MANIFEST_MEDIA_TYPES:
            raise ManifestInvalid(f"unsupported manifest media type {declared!r}")
        return declared
    # An OCI document may omit mediaType: its shape tells which kind it is.
    return OCI_INDEX if "manifests" in document else OCI_MANIFEST


def _annotations(document: dict[str, Any]) -> dict[str, str]:
    value = document.get("annotations")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ManifestInvalid("annotations must map strings to strings")
    return value


def parse_manifest(content: bytes, content_type: str) -> ParsedManifest:
    """Validate a pushed manifest and list what it references."""
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    if document.get("schemaVersion") != 2:
        raise ManifestInvalid("schemaVersion must be 2")
    media_type = _media_type(content_type, document)
    subject = _descriptor(document["subject"], "subject") if document.get("subject") is not None else None
    artifact_type = document.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid("artifactType must be a string")
    if artifact_type is not None:
        _check_media_type(artifact_type, "artifactType")
    annotations = _annotations(document)

    if media_type in INDEXES:
        children = tuple(d for d, _ in _descriptors(document, "manifests", required=True))
        return ParsedManifest(media_type, (), children, subject, artifact_type, annotations)

    config = _descriptor(document.get("config"), "config")
    layers = _descriptors(document, "layers", required=True)
    # Foreign (non-distributable) layers carry `urls` and are fetched from there, not from us.
    blobs = [config] + [d for d, raw in layers if not raw.get("urls")]
    if artifact_type is None and media_type == OCI_MANIFEST:
        artifact_type = config.media_type
    return ParsedManifest(media_type, tuple(blobs), (), subject, artifact_type, annotations)


def parse_stored_annotations(content: bytes) -> dict[str, str]:
    """Annotations of a manifest already accepted (for referrers listings)."""
    document = json.loads(content)
    value = document.get("annotations") if isinstance(document, dict) else None
    return value if isinstance(value, dict) else {}
