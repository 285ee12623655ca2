"""Images pushed through the registry's real services (SQLite and a filesystem store in a temporary data
directory), for the scanning tests: blobs, manifests, an image per architecture, a multi-arch index."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from scan_support import tar_bytes

from dockyard.app import Services, build_services
from dockyard.config import load_settings
from dockyard.content.digests import digest_of, parse_digest
from dockyard.content.manifest_format import OCI_INDEX, OCI_MANIFEST
from support.pushing import push_blob

REPO = "team/app"
OS_DEBIAN = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
TAR_PLAIN = "application/vnd.oci.image.layer.v1.tar"
EMPTY = "application/vnd.oci.empty.v1+json"
SITE = "/usr/local/lib/python3.11/site-packages"


def dpkg_status(arch: str) -> bytes:
    """A dpkg status file: two installed packages and one removed (which must not be reported)."""
    stanzas = [
        ("libc6", "2.36-9+deb12u4", "install ok installed", "glibc"),
        ("zlib1g", "1:1.2.13.dfsg-1", "install ok installed", "zlib"),
        ("oldpkg", "1.0-1", "deinstall ok config-files", ""),
    ]
    text = []
    for name, version, status, source in stanzas:
        lines = [f"Package: {name}", f"Status: {status}", f"Architecture: {arch}", f"Version: {version}"]
        if source:
            lines.append(f"Source: {source}")
        text.append("\n".join(lines) + "\n")
    return "\n".join(text).encode()


def dist_info(name: str, version: str) -> tuple[str, str, bytes]:
    """The METADATA file of an installed Python distribution."""
    body = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nLong description.\n"
    return ("file", f"{SITE}/{name}-{version}.dist-info/METADATA", body.encode())


def registry(tmp_path: Path) -> Services:
    """The registry's real services on a fresh SQLite database and filesystem store."""
    return build_services(load_settings(data_dir=tmp_path / "data"))


def descriptor(media_type: str, digest: str, size: int, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def push_manifest(services: Services, name: str, document: dict[str, object], tag: str | None = None) -> str:
    """Push a manifest by digest (or by tag) through `ManifestService.put`; returns its digest."""
    content = json.dumps(document).encode()
    media_type = str(document["mediaType"])
    reference = tag if tag is not None else parse_digest(digest_of(content))
    return services.manifests.put(name, reference, content, media_type).digest


def size_of(services: Services, digest: str, name: str = REPO) -> int:
    """The stored size of a manifest, for the descriptor of an index entry."""
    return len(services.manifests.get(name, parse_digest(digest)).content)


@dataclass(frozen=True)
class Pushed:
    """What `push_multiarch` stored."""

    index: str
    amd64: str
    arm64: str
    signature: str
    attestation: str
    amd64_layers: tuple[str, str]
    arm64_layers: tuple[str, str]
    amd64_config: str
    foreign: str


def push_image(
    services: Services,
    name: str,
    arch: str,
    layers: list[tuple[bytes, str]],
    extra_layers: tuple[dict[str, object], ...] = (),
) -> tuple[str, list[str], str]:
    """An image manifest over `layers` (blob, media type) and a config for `linux/arch`; returns the
    manifest digest, the layer digests and the config digest. `extra_layers` are descriptors appended
    as they are (blobs not pushed)."""
    config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers"}}).encode()
    config_digest = push_blob(services, name, config)
    descriptors = []
    digests = []
    for blob, media_type in layers:
        digest = push_blob(services, name, blob)
        digests.append(digest)
        descriptors.append(descriptor(media_type, digest, len(blob)))
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(IMAGE_CONFIG, config_digest, len(config)),
        "layers": [*descriptors, *extra_layers],
    }
    return push_manifest(services, name, document), digests, config_digest


def push_multiarch(services: Services, name: str = REPO) -> Pushed:
    """An index of an amd64 and an arm64/v8 image, a Notation-style signature of the amd64 image and a
    buildx attestation. Both images have Debian 12 with dpkg packages of their architecture (gzip base
    layer) and a Python distribution in a second layer (plain tar on amd64, zstd on arm64), at different
    versions; the amd64 image also lists a foreign layer, whose bytes the registry does not hold."""
    foreign = "sha256:" + "f" * 64
    amd64, amd64_layers, amd64_config = push_image(
        services,
        name,
        "amd64",
        [
            (
                tar_bytes(
                    [
                        ("file", "/etc/os-release", OS_DEBIAN),
                        ("file", "/var/lib/dpkg/status", dpkg_status("amd64")),
                    ]
                ),
                TAR_GZIP,
            ),
            (tar_bytes([dist_info("requests", "2.31.0")], "plain"), TAR_PLAIN),
        ],
        extra_layers=(
            descriptor(
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                foreign,
                1234,
                urls=["https://example.invalid/base-layer"],
            ),
        ),
    )
    arm64, arm64_layers, _ = push_image(
        services,
        name,
        "arm64",
        [
            (
                tar_bytes(
                    [
                        ("file", "/etc/os-release", OS_DEBIAN),
                        ("file", "/var/lib/dpkg/status", dpkg_status("arm64")),
                    ]
                ),
                TAR_GZIP,
            ),
            (tar_bytes([dist_info("requests", "2.25.0")], "zstd"), TAR_ZSTD),
        ],
    )
    empty = push_blob(services, name, b"{}")
    envelope = b'{"payload": "signature of the amd64 image"}'
    envelope_digest = push_blob(services, name, envelope)
    signature = push_manifest(
        services,
        name,
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.cncf.notary.signature",
            "config": descriptor(EMPTY, empty, 2),
            "layers": [descriptor("application/jose+json", envelope_digest, len(envelope))],
            "subject": descriptor(OCI_MANIFEST, amd64, 0),
        },
    )
    statement = b'{"_type": "https://in-toto.io/Statement/v0.1"}'
    attestation, _, _ = push_image(services, name, "unknown", [(statement, "application/vnd.in-toto+json")])
    index = push_manifest(
        services,
        name,
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                descriptor(
                    OCI_MANIFEST,
                    amd64,
                    size_of(services, amd64, name),
                    platform={"os": "linux", "architecture": "amd64"},
                ),
                descriptor(
                    OCI_MANIFEST,
                    arm64,
                    size_of(services, arm64, name),
                    platform={"os": "linux", "architecture": "arm64", "variant": "v8"},
                ),
                descriptor(
                    OCI_MANIFEST,
                    signature,
                    size_of(services, signature, name),
                    platform={"os": "linux", "architecture": "amd64"},
                ),
                descriptor(
                    OCI_MANIFEST,
                    attestation,
                    size_of(services, attestation, name),
                    platform={"os": "unknown", "architecture": "unknown"},
                    annotations={"vnd.docker.reference.type": "attestation-manifest"},
                ),
            ],
        },
        tag="latest",
    )
    return Pushed(
        index,
        amd64,
        arm64,
        signature,
        attestation,
        (amd64_layers[0], amd64_layers[1]),
        (arm64_layers[0], arm64_layers[1]),
        amd64_config,
        foreign,
    )
