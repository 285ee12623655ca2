"""OCI image layouts on disk, from directories turned into gzip layers, for real clients to push."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def tar_layer(source: Path, prefix: str = "") -> bytes:
    """A gzip tar of `source`'s contents (under `prefix` in the image) with numeric owners, made by `tar`."""
    transform = ["--transform", f"s,^\\.,{prefix.strip('/')},"] if prefix.strip("/") else []
    result = subprocess.run(
        ["tar", "-C", str(source), "--numeric-owner", "-czf", "-", *transform, "."],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return result.stdout


def write_layout(layout: Path, layers: list[bytes], tag: str, architecture: str = "amd64") -> list[str]:
    """An OCI layout holding one linux image of `layers` (gzip tars, bottom first) tagged `tag`; returns the
    layer digests."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descriptors = [{"mediaType": OCI_LAYER_GZIP, **_blob(layout, layer)} for layer in layers]
    diff_ids = [_diff_id(layer) for layer in layers]
    config = json.dumps(
        {"architecture": architecture, "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **_blob(layout, config)},
            "layers": descriptors,
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                **_blob(layout, manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return [str(d["digest"]) for d in descriptors]


def _diff_id(layer: bytes) -> str:
    """The digest of the uncompressed tar, read in chunks."""
    digest = hashlib.sha256()
    with gzip.GzipFile(fileobj=io.BytesIO(layer)) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"
