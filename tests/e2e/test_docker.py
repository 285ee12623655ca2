"""The docker engine against a live registry: push, pull after rmi, manifest inspect."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import (
    ACCEPT_ALL,
    DOCKER_CLI,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    ClientEnv,
    DockerEngine,
    DockyardServer,
    Layout,
    check_consistent,
    docker,
    docker_ref,
    run,
    sha256,
    skopeo_copy,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def loaded_image(
    docker_engine: DockerEngine, client_env: ClientEnv, images: dict[str, Layout]
) -> Iterator[str]:
    """The multi-layer image loaded into the engine as dockyard-e2e/multilayer:v1."""
    archive = client_env.base / "tmp" / "multilayer.tar"
    archive.unlink(missing_ok=True)
    run(["skopeo", "copy", images["multilayer"].ref, f"docker-archive:{archive}:dockyard-e2e/multilayer:v1"],
        env=client_env.env())  # fmt: skip
    run(
        [DOCKER_CLI, "-H", f"unix://{docker_engine.socket}", "load", "-i", str(archive)], env=client_env.env()
    )
    archive.unlink()
    yield "dockyard-e2e/multilayer:v1"


def registry_manifest(server: DockyardServer, repo: str, reference: str) -> tuple[str, dict[str, Any]]:
    """Digest and parsed body of a manifest as the registry serves it."""
    with server.client() as http:
        response = http.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT_ALL})
    assert response.status_code == 200, response.text
    assert response.headers["docker-content-digest"] == sha256(response.content)
    return response.headers["docker-content-digest"], json.loads(response.content)


def inspect(engine: DockerEngine, cenv: ClientEnv, server: DockyardServer, ref: str) -> dict[str, Any]:
    """`docker image inspect REF`, parsed."""
    (info,) = json.loads(docker(engine, cenv, server, "image", "inspect", ref).stdout)
    return dict(info)


def test_docker_push_pull_and_manifest_inspect(
    docker_engine: DockerEngine,
    client_env: ClientEnv,
    server: DockyardServer,
    images: dict[str, Layout],
    loaded_image: str,
) -> None:
    original = json.loads(images["multilayer"].manifest_bytes())
    config_digest = original["config"]["digest"]
    target = f"{server.address}/dk/multilayer:v1"
    mounted = f"{server.address}/dk/mounted:v1"
    docker(docker_engine, client_env, server, "tag", loaded_image, target)
    try:
        push = docker(docker_engine, client_env, server, "push", target)
        digest, manifest = registry_manifest(server, "dk/multilayer", "v1")
        assert f"digest: {digest}" in push.stdout
        assert manifest["mediaType"] == DOCKER_MANIFEST
        assert manifest["config"]["digest"] == config_digest
        assert len(manifest["layers"]) == 3

        # Forget the image entirely, then pull it back from the registry.
        docker(docker_engine, client_env, server, "rmi", target)
        assert (
            docker(docker_engine, client_env, server, "image", "inspect", target, check=False).returncode != 0
        )
        pull = docker(docker_engine, client_env, server, "pull", target)
        assert f"Digest: {digest}" in pull.stdout
        info = inspect(docker_engine, client_env, server, target)
        assert info["Id"] == config_digest
        assert f"{server.address}/dk/multilayer@{digest}" in info["RepoDigests"]
        assert info["Config"]["Labels"] == {"dockyard.e2e": "multilayer"}

        shown = docker(docker_engine, client_env, server, "manifest", "inspect", "--insecure", target)
        assert json.loads(shown.stdout) == manifest

        # The same image into another repository: docker mounts every layer instead of uploading it.
        docker(docker_engine, client_env, server, "tag", target, mounted)
        again = docker(docker_engine, client_env, server, "push", mounted)
        assert again.stdout.count("Mounted from dk/multilayer") == 3, again.stdout
        assert registry_manifest(server, "dk/mounted", "v1") == (digest, manifest)
    finally:
        docker(docker_engine, client_env, server, "rmi", "--force", target, mounted, check=False)
    check_consistent(server)


def test_docker_pulls_its_platform_from_an_index(
    docker_engine: DockerEngine, client_env: ClientEnv, server: DockyardServer, images: dict[str, Layout]
) -> None:
    image = images["multiarch"]
    skopeo_copy(client_env, server, image.ref, docker_ref(server, "dk/multiarch:oci"), "--all")
    skopeo_copy(
        client_env, server, image.ref, docker_ref(server, "dk/multiarch:list"), "--all", "--format", "v2s2"
    )
    children = {c["platform"]["architecture"]: c["digest"] for c in image.children()}
    amd64_config = json.loads(image.blob_bytes(children["amd64"]))["config"]["digest"]
    oci, listed = f"{server.address}/dk/multiarch:oci", f"{server.address}/dk/multiarch:list"
    try:
        for target in (oci, listed):
            docker(docker_engine, client_env, server, "pull", target)
            info = inspect(docker_engine, client_env, server, target)
            assert info["Architecture"] == "amd64"
            assert info["Id"] == amd64_config
        assert (
            f"{server.address}/dk/multiarch@{image.top.digest}"
            in inspect(docker_engine, client_env, server, oci)["RepoDigests"]
        )

        # The 20.10 CLI reads Docker manifest lists (it cannot parse OCI children, from any registry).
        list_digest, served = registry_manifest(server, "dk/multiarch", "list")
        assert served["mediaType"] == DOCKER_LIST
        shown = json.loads(
            docker(docker_engine, client_env, server, "manifest", "inspect", "--insecure", listed).stdout
        )
        assert shown == served
        assert {m["platform"]["architecture"] for m in shown["manifests"]} == {"amd64", "arm64"}
        for child in shown["manifests"]:
            _, child_manifest = registry_manifest(server, "dk/multiarch", child["digest"])
            assert child_manifest["mediaType"] == DOCKER_MANIFEST
        assert list_digest != image.top.digest
    finally:
        docker(docker_engine, client_env, server, "rmi", "--force", oci, listed, check=False)
    check_consistent(server)
