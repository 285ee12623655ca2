"""skopeo against a live registry: single, multi-layer and multi-arch pushes, v2s2, zstd, pulls, delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    ClientEnv,
    DockyardServer,
    Layout,
    check_consistent,
    docker_ref,
    sha256,
    skopeo,
    skopeo_copy,
    skopeo_copy_process,
)

pytestmark = pytest.mark.e2e


def pull_layout(
    cenv: ClientEnv, server: DockyardServer, ref: str, dest: Path, *options: str
) -> tuple[bytes, dict[str, Any]]:
    """skopeo copy docker://... oci:DEST:pulled; the pulled manifest's bytes and index entry."""
    skopeo_copy(cenv, server, docker_ref(server, ref), f"oci:{dest}:pulled", *options)
    index = json.loads((dest / "index.json").read_text())
    (entry,) = index["manifests"]
    data = (dest / "blobs" / "sha256" / entry["digest"].split(":", 1)[1]).read_bytes()
    assert sha256(data) == entry["digest"]
    return data, entry


def layout_blob(path: Path, digest: str) -> bytes:
    """A blob of an OCI layout directory."""
    return (path / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def test_push_single_image_inspect_and_raw_bytes(
    client_env: ClientEnv, server: DockyardServer, images: dict[str, Layout]
) -> None:
    image = images["single"]
    skopeo_copy(client_env, server, image.ref, docker_ref(server, "e2e/single:v1"))

    raw = skopeo(client_env, server, "inspect", "--raw", docker_ref(server, "e2e/single:v1"))
    assert raw.stdout.encode() == image.manifest_bytes(), "the registry must return the pushed bytes"

    info = json.loads(skopeo(client_env, server, "inspect", docker_ref(server, "e2e/single:v1")).stdout)
    assert info["Digest"] == image.top.digest
    assert info["Architecture"] == "amd64"
    assert info["Labels"] == {"dockyard.e2e": "single"}
    manifest = json.loads(image.manifest_bytes())
    assert info["Layers"] == [layer["digest"] for layer in manifest["layers"]]
    config = json.loads(skopeo(client_env, server, "inspect", "--config", "--raw",
                               docker_ref(server, "e2e/single:v1")).stdout)  # fmt: skip
    assert (
        config["rootfs"]["diff_ids"]
        == json.loads(image.blob_bytes(manifest["config"]["digest"]))["rootfs"]["diff_ids"]
    )

    tags = json.loads(skopeo(client_env, server, "list-tags", docker_ref(server, "e2e/single")).stdout)
    assert tags == {"Repository": f"{server.address}/e2e/single", "Tags": ["v1"]}


def test_multilayer_push_and_pull_by_digest(
    client_env: ClientEnv, server: DockyardServer, images: dict[str, Layout], tmp_path: Path
) -> None:
    image = images["multilayer"]
    skopeo_copy(client_env, server, image.ref, docker_ref(server, "e2e/multi:one"))
    skopeo_copy(client_env, server, image.ref, docker_ref(server, "e2e/multi:two"))

    data, entry = pull_layout(client_env, server, f"e2e/multi@{image.top.digest}", tmp_path / "pulled")
    assert data == image.manifest_bytes()
    assert entry["digest"] == image.top.digest
    manifest = json.loads(data)
    assert len(manifest["layers"]) == 3
    for blob in [manifest["config"], *manifest["layers"]]:
        assert layout_blob(tmp_path / "pulled", blob["digest"]) == image.blob_bytes(blob["digest"])

    tags = json.loads(skopeo(client_env, server, "list-tags", docker_ref(server, "e2e/multi")).stdout)
    assert sorted(tags["Tags"]) == ["one", "two"]


def test_multiarch_index_with_all_and_override_arch(
    client_env: ClientEnv, server: DockyardServer, images: dict[str, Layout], tmp_path: Path
) -> None:
    image = images["multiarch"]
    skopeo_copy(client_env, server, image.ref, docker_ref(server, "e2e/multiarch:v1"), "--all")

    raw = skopeo(client_env, server, "inspect", "--raw", docker_ref(server, "e2e/multiarch:v1"))
    assert raw.stdout.encode() == image.manifest_bytes()
    assert json.loads(raw.stdout)["mediaType"] == OCI_INDEX
    children = {c["platform"]["architecture"]: c["digest"] for c in image.children()}
    assert set(children) == {"amd64", "arm64"}

    # Every child was pushed and is served by digest with its exact bytes.
    for digest in children.values():
        child = skopeo(client_env, server, "inspect", "--raw", docker_ref(server, f"e2e/multiarch@{digest}"))
        assert child.stdout.encode() == image.blob_bytes(digest)

    arm, arm_entry = pull_layout(
        client_env, server, "e2e/multiarch:v1", tmp_path / "arm", "--override-arch", "arm64"
    )
    assert arm_entry["digest"] == children["arm64"]
    assert arm == image.blob_bytes(children["arm64"])
    _, amd_entry = pull_layout(
        client_env, server, "e2e/multiarch:v1", tmp_path / "amd", "--override-arch", "amd64"
    )
    assert amd_entry["digest"] == children["amd64"]

    info = json.loads(
        skopeo(
            client_env,
            server,
            "inspect",
            docker_ref(server, "e2e/multiarch:v1"),
            global_options=["--override-arch", "arm64"],
        ).stdout
    )
    assert info["Architecture"] == "arm64"
    assert info["Digest"] == image.top.digest  # skopeo names the index it resolved through
    assert info["Layers"] == [layer["digest"] for layer in json.loads(arm)["layers"]]


def test_format_v2s2(
    client_env: ClientEnv, server: DockyardServer, images: dict[str, Layout], tmp_path: Path
) -> None:
    image = images["multilayer"]
    skopeo_copy(client_env, server, image.ref, docker_ref(server, "e2e/v2s2:v1"), "--format", "v2s2")

    raw = skopeo(client_env, server, "inspect", "--raw", docker_ref(server, "e2e/v2s2:v1")).stdout
    manifest = json.loads(raw)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    original = json.loads(image.manifest_bytes())
    # Same blobs, only the media types change.
    assert [layer["digest"] for layer in manifest["layers"]] == [
        layer["digest"] for layer in original["layers"]
    ]
    with server.client() as http:
        response = http.get("/v2/e2e/v2s2/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
        assert response.status_code == 200
        assert response.headers["content-type"] == DOCKER_MANIFEST
        assert response.content == raw.encode()

    data, _ = pull_layout(client_env, server, "e2e/v2s2:v1", tmp_path / "pulled")
    pulled = json.loads(data)
    for layer in pulled["layers"]:
        assert layout_blob(tmp_path / "pulled", layer["digest"]) == image.blob_bytes(layer["digest"])


def test_zstd_layers(
    client_env: ClientEnv, server: DockyardServer, images: dict[str, Layout], tmp_path: Path
) -> None:
    image = images["multilayer"]
    skopeo_copy(
        client_env, server, image.ref, docker_ref(server, "e2e/zstd:v1"),
        "--dest-compress", "--dest-compress-format", "zstd",
    )  # fmt: skip
    manifest = json.loads(
        skopeo(client_env, server, "inspect", "--raw", docker_ref(server, "e2e/zstd:v1")).stdout
    )
    assert manifest["mediaType"] == OCI_MANIFEST
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    }
    original = json.loads(image.manifest_bytes())
    assert manifest["config"]["digest"] == original["config"]["digest"]

    # Pulled back, each zstd layer is the same blob the registry was given.
    data, _ = pull_layout(client_env, server, "e2e/zstd:v1", tmp_path / "pulled")
    pulled = json.loads(data)
    for layer in pulled["layers"]:
        blob = layout_blob(tmp_path / "pulled", layer["digest"])
        assert sha256(blob) == layer["digest"]
        assert blob[:4] == b"\x28\xb5\x2f\xfd", "a zstd frame"
    with server.client() as http:
        for layer in manifest["layers"]:
            response = http.get(f"/v2/e2e/zstd/blobs/{layer['digest']}")
            assert response.status_code == 200
            assert sha256(response.content) == layer["digest"]


def test_delete_then_pull_fails(
    client_env: ClientEnv, server: DockyardServer, images: dict[str, Layout], tmp_path: Path
) -> None:
    image = images["single"]
    ref = docker_ref(server, "e2e/gone:v1")
    skopeo_copy(client_env, server, image.ref, ref)
    skopeo_copy(client_env, server, image.ref, docker_ref(server, "e2e/gone:v2"))

    skopeo(client_env, server, "delete", ref)

    # Deleting by tag resolves to the manifest: every tag of it goes, and the manifest too.
    for tag in ("v1", "v2"):
        inspect = skopeo(
            client_env, server, "inspect", "--raw", docker_ref(server, f"e2e/gone:{tag}"), check=False
        )
        assert inspect.returncode != 0
    by_digest = skopeo(
        client_env,
        server,
        "inspect",
        "--raw",
        docker_ref(server, f"e2e/gone@{image.top.digest}"),
        check=False,
    )
    assert by_digest.returncode != 0
    assert "manifest unknown" in by_digest.stderr.lower() or "not found" in by_digest.stderr.lower()
    pull = skopeo_copy(client_env, server, ref, f"oci:{tmp_path / 'pulled'}:x", check=False)
    assert pull.returncode != 0
    tags = json.loads(skopeo(client_env, server, "list-tags", docker_ref(server, "e2e/gone")).stdout)
    assert tags["Tags"] == []

    # And it can be pushed again.
    skopeo_copy(client_env, server, image.ref, ref)
    raw = skopeo(client_env, server, "inspect", "--raw", ref)
    assert raw.stdout.encode() == image.manifest_bytes()


def test_concurrent_pushes_of_shared_blobs(
    client_env: ClientEnv, server: DockyardServer, images: dict[str, Layout]
) -> None:
    """Six skopeo pushes at once, three into one repository, sharing every blob: all succeed, all intact."""
    image = images["multilayer"]
    targets = [f"e2e/shared:t{i}" for i in range(3)] + [f"e2e/other{i}:v1" for i in range(3)]
    pushes = [skopeo_copy_process(client_env, server, image.ref, docker_ref(server, t)) for t in targets]
    try:
        for target, push in zip(targets, pushes, strict=True):
            _, stderr = push.communicate(timeout=180)
            assert push.returncode == 0, f"{target}: {stderr}"
    finally:
        for push in pushes:
            if push.poll() is None:
                push.kill()
                push.wait(10)
    seen = check_consistent(server)
    assert seen["e2e/shared"] == {f"t{i}": image.top.digest for i in range(3)}
    for i in range(3):
        assert seen[f"e2e/other{i}"] == {"v1": image.top.digest}
