"""podman and buildah against a live registry: push, manifest push --all, pull back, image inspect."""

from __future__ import annotations

import json
from typing import Any

import pytest
from e2e_support import (
    ACCEPT_ALL,
    OCI_INDEX,
    ClientEnv,
    DockyardServer,
    Layout,
    buildah,
    busybox_bytes,
    check_consistent,
    docker_ref,
    podman,
    sha256,
)

pytestmark = pytest.mark.e2e


def registry_manifest(server: DockyardServer, repo: str, reference: str) -> tuple[str, dict[str, Any]]:
    """The digest and parsed body of a manifest as the registry serves it."""
    with server.client() as http:
        response = http.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT_ALL})
    assert response.status_code == 200, response.text
    assert response.headers["docker-content-digest"] == sha256(response.content)
    return response.headers["docker-content-digest"], json.loads(response.content)


def image_inspect(cenv: ClientEnv, server: DockyardServer, ref: str) -> dict[str, Any]:
    """`podman image inspect REF`, parsed."""
    (info,) = json.loads(podman(cenv, server, "image", "inspect", ref).stdout)
    return dict(info)


def config_id(layout: Layout, manifest_digest: str | None = None) -> str:
    """The image ID (config digest, without the algorithm) of the layout's image or of one child."""
    manifest = json.loads(layout.blob_bytes(manifest_digest or layout.top.digest))
    return str(manifest["config"]["digest"]).split(":", 1)[1]


def forget_images(cenv: ClientEnv, server: DockyardServer, *refs: str) -> None:
    """Remove images from local storage so a later pull must fetch them from the registry."""
    for ref in refs:
        podman(cenv, server, "rmi", "--force", ref, check=False)
    for ref in refs:
        assert podman(cenv, server, "image", "exists", ref, check=False).returncode != 0


def test_podman_push_pull_and_inspect(
    client_env: ClientEnv, server: DockyardServer, images: dict[str, Layout]
) -> None:
    image = images["multilayer"]
    target = f"{server.address}/pm/multilayer:v1"
    image_id = podman(client_env, server, "pull", "--quiet", image.ref).stdout.strip()
    assert image_id == config_id(image)
    podman(client_env, server, "tag", image_id, target)
    podman(client_env, server, "push", "--tls-verify=false", target)

    digest, manifest = registry_manifest(server, "pm/multilayer", "v1")
    assert manifest["config"]["digest"] == f"sha256:{image_id}"
    assert len(manifest["layers"]) == 3

    forget_images(client_env, server, target, image_id)
    podman(client_env, server, "pull", "--tls-verify=false", target)
    info = image_inspect(client_env, server, target)
    assert info["Id"] == image_id
    assert info["Architecture"] == "amd64"
    assert info["Labels"] == {"dockyard.e2e": "multilayer"}
    assert info["Digest"] == digest
    assert f"{server.address}/pm/multilayer@{digest}" in info["RepoDigests"]
    check_consistent(server)


def test_podman_manifest_push_all(
    client_env: ClientEnv, server: DockyardServer, images: dict[str, Layout]
) -> None:
    image = images["multiarch"]
    children = {c["platform"]["architecture"]: c["digest"] for c in image.children()}
    podman(client_env, server, "manifest", "create", "pm-e2e-list")
    try:
        podman(client_env, server, "manifest", "add", "--all", "pm-e2e-list", image.ref)
        podman(
            client_env, server, "manifest", "push", "--all", "--tls-verify=false",
            "pm-e2e-list", docker_ref(server, "pm/multiarch:v1"),
        )  # fmt: skip
    finally:
        podman(client_env, server, "manifest", "rm", "pm-e2e-list", check=False)

    _, index = registry_manifest(server, "pm/multiarch", "v1")
    assert index["mediaType"] == OCI_INDEX
    assert {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]} == children

    target = f"{server.address}/pm/multiarch:v1"
    podman(client_env, server, "pull", "--tls-verify=false", "--arch", "arm64", target)
    info = image_inspect(client_env, server, target)
    assert info["Architecture"] == "arm64"
    assert info["Id"] == config_id(image, children["arm64"])
    forget_images(client_env, server, target)
    check_consistent(server)


def build_busybox(cenv: ClientEnv, server: DockyardServer, name: str, arch: str, label: str) -> str:
    """buildah from scratch + a static busybox, committed as NAME; returns the image ID."""
    busybox = cenv.base / "tmp" / "busybox"
    if not busybox.exists():
        busybox.write_bytes(busybox_bytes())
    container = buildah(cenv, server, "from", "scratch").stdout.strip()
    try:
        buildah(cenv, server, "copy", container, str(busybox), "/bin/busybox")
        buildah(
            cenv, server, "config", "--label", f"dockyard.e2e={label}",
            "--cmd", "/bin/busybox sh", "--arch", arch, "--os", "linux", container,
        )  # fmt: skip
        return buildah(cenv, server, "commit", "--quiet", container, name).stdout.strip()
    finally:
        buildah(cenv, server, "rm", container, check=False)


def test_buildah_build_push_and_pull(client_env: ClientEnv, server: DockyardServer) -> None:
    image_id = build_busybox(client_env, server, "localhost/bd-e2e-image", "amd64", "buildah")
    target = f"{server.address}/bd/busybox:v1"
    buildah(client_env, server, "push", "--tls-verify=false", "localhost/bd-e2e-image", f"docker://{target}")

    digest, manifest = registry_manifest(server, "bd/busybox", "v1")
    assert manifest["config"]["digest"] == f"sha256:{image_id}"

    forget_images(client_env, server, "localhost/bd-e2e-image")
    buildah(client_env, server, "pull", "--tls-verify=false", target)
    info = image_inspect(client_env, server, target)
    assert info["Id"] == image_id
    assert info["Labels"]["dockyard.e2e"] == "buildah"
    assert info["Digest"] == digest
    forget_images(client_env, server, target)
    check_consistent(server)


def test_buildah_manifest_push_all(client_env: ClientEnv, server: DockyardServer) -> None:
    ids = {arch: build_busybox(client_env, server, f"localhost/bd-e2e-{arch}", arch, f"buildah-{arch}")
           for arch in ("amd64", "arm64")}  # fmt: skip
    buildah(client_env, server, "manifest", "create", "bd-e2e-list")
    try:
        for arch in ids:
            buildah(
                client_env,
                server,
                "manifest",
                "add",
                "bd-e2e-list",
                f"containers-storage:localhost/bd-e2e-{arch}",
            )
        buildah(
            client_env, server, "manifest", "push", "--all", "--tls-verify=false",
            "bd-e2e-list", docker_ref(server, "bd/multiarch:v1"),
        )  # fmt: skip
    finally:
        buildah(client_env, server, "manifest", "rm", "bd-e2e-list", check=False)
        forget_images(client_env, server, *(f"localhost/bd-e2e-{arch}" for arch in ids))

    _, index = registry_manifest(server, "bd/multiarch", "v1")
    arches = {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}
    assert set(arches) == {"amd64", "arm64"}
    for arch, child in arches.items():
        _, manifest = registry_manifest(server, "bd/multiarch", child)
        assert manifest["config"]["digest"] == f"sha256:{ids[arch]}"

    target = f"{server.address}/bd/multiarch:v1"
    podman(client_env, server, "pull", "--tls-verify=false", "--arch", "arm64", target)
    info = image_inspect(client_env, server, target)
    assert info["Architecture"] == "arm64"
    assert info["Id"] == ids["arm64"]
    assert info["Labels"]["dockyard.e2e"] == "buildah-arm64"
    forget_images(client_env, server, target)
    check_consistent(server)
