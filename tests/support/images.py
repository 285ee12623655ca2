"""Test images built offline with buildah from scratch: a static busybox rootfs, no registry involved."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .processes import run
from .tools import ContainerTools

BUSYBOX_APPLETS = ("sh", "ls", "cat", "echo", "env", "true", "sleep", "mkdir", "rm", "wget")
TAG = "v1"


@dataclass(frozen=True)
class OciImage:
    """An OCI image layout directory holding one tagged image manifest or index."""

    layout: Path
    tag: str = TAG

    @property
    def ref(self) -> str:
        """The reference skopeo/podman/buildah take: oci:DIR:TAG."""
        return f"oci:{self.layout}:{self.tag}"

    def blob(self, digest: str) -> bytes:
        """A blob's bytes, by digest."""
        algorithm, hexdigest = digest.split(":", 1)
        return (self.layout / "blobs" / algorithm / hexdigest).read_bytes()

    def descriptor(self) -> dict[str, Any]:
        """The index.json entry for the tag (mediaType, digest, size)."""
        index = json.loads((self.layout / "index.json").read_text())
        for entry in index["manifests"]:
            if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == self.tag:
                return dict(entry)
        raise KeyError(f"{self.tag} not in {self.layout}/index.json")

    @property
    def digest(self) -> str:
        """Digest of the tagged manifest or index."""
        return str(self.descriptor()["digest"])

    def document(self) -> dict[str, Any]:
        """The tagged manifest or index, parsed."""
        return dict(json.loads(self.blob(self.digest)))

    def manifests(self) -> list[dict[str, Any]]:
        """An index's child descriptors (empty for a single image)."""
        return list(self.document().get("manifests", []))


@dataclass
class BuiltImages:
    """The session's test images.

    single: one layer (busybox rootfs), amd64. multilayer: three layers (rootfs, /etc/motd, 256 KiB of
    random data). multiarch: an OCI index of linux/amd64 and linux/arm64 images (one layer each, /etc/arch
    differs).
    """

    single: OciImage
    multilayer: OciImage
    multiarch: OciImage
    workdir: Path
    _archives: dict[tuple[Path, str], Path] = field(default_factory=dict)

    def docker_archive(self, image: OciImage, reference: str) -> Path:
        """A `docker load`-able tarball of a single-arch image, tagged `reference` (cached)."""
        key = (image.layout, reference)
        if key not in self._archives:
            target = self.workdir / "archives" / f"{len(self._archives)}.tar"
            target.parent.mkdir(exist_ok=True)
            run(["skopeo", "copy", "--quiet", image.ref, f"docker-archive:{target}:{reference}"])
            self._archives[key] = target
        return self._archives[key]


def busybox_rootfs(target: Path) -> Path:
    """bin/busybox (statically linked, from busybox-static) plus applet symlinks, and etc/, tmp/."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        raise RuntimeError("busybox is not installed (Debian package busybox-static): run scripts/test")
    (target / "bin").mkdir(parents=True)
    (target / "etc").mkdir()
    (target / "tmp").mkdir()
    shutil.copy2(busybox, target / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (target / "bin" / applet).symlink_to("busybox")
    return target


def build_images(workdir: Path) -> BuiltImages:
    """Build all test images into `workdir` (layouts under it); buildah's storage is deleted afterwards."""
    tools = ContainerTools()
    try:
        rootfs = busybox_rootfs(workdir / "rootfs")
        files = workdir / "files"
        files.mkdir()
        buildah = tools.buildah

        def new_container(base: str, arch: str) -> str:
            return buildah("from", "--quiet", "--pull=never", "--arch", arch, base).stdout.strip()

        def add(container: str, content: bytes | Path, destination: str) -> None:
            if isinstance(content, bytes):
                source = files / f"{len(list(files.iterdir()))}.bin"
                source.write_bytes(content)
                content = source
            buildah("copy", container, str(content), destination)

        def commit(container: str, name: str, arch: str, label: str) -> str:
            buildah(
                "config", "--arch", arch, "--os", "linux", "--entrypoint", '["/bin/sh"]',
                "--label", f"dockyard.test={label}", container,
            )  # fmt: skip
            buildah("commit", "--quiet", "--rm", container, name)
            return name

        def push(image: str, name: str) -> OciImage:
            buildah("push", "--quiet", image, f"oci:{workdir / name}:{TAG}")
            return OciImage(workdir / name)

        container = new_container("scratch", "amd64")
        add(container, rootfs, "/")
        single = push(commit(container, "dy-single", "amd64", "single"), "single")

        # One commit per layer: each `from` starts a container on top of the previous image.
        container = new_container("scratch", "amd64")
        add(container, rootfs, "/")
        below = commit(container, "dy-ml-1", "amd64", "multilayer")
        container = new_container(below, "amd64")
        add(container, b"welcome to dockyard\n", "/etc/motd")
        below = commit(container, "dy-ml-2", "amd64", "multilayer")
        container = new_container(below, "amd64")
        add(container, os.urandom(256 << 10), "/data/random.bin")
        multilayer = push(commit(container, "dy-multilayer", "amd64", "multilayer"), "multilayer")

        buildah("manifest", "create", "dy-multiarch")
        for arch in ("amd64", "arm64"):
            container = new_container("scratch", arch)
            add(container, rootfs, "/")
            add(container, f"{arch}\n".encode(), "/etc/arch")
            buildah(
                "manifest", "add", "dy-multiarch", commit(container, f"dy-{arch}", arch, f"multiarch-{arch}")
            )
        buildah("manifest", "push", "--quiet", "--all", "dy-multiarch", f"oci:{workdir / 'multiarch'}:{TAG}")
        return BuiltImages(single, multilayer, OciImage(workdir / "multiarch"), workdir)
    finally:
        tools.remove()
