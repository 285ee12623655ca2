"""containerd's `ctr` against a live registry: platform-specific pull from an index, push back."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest
from e2e_support import (
    ACCEPT_ALL,
    ClientEnv,
    Containerd,
    DockyardServer,
    Layout,
    check_consistent,
    ctr,
    docker_ref,
    remove_tree,
    sha256,
    short_tempdir,
    skopeo_copy,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def containerd() -> Iterator[Containerd]:
    """A private containerd for this module."""
    assert shutil.which("containerd") and shutil.which("ctr"), "containerd and ctr are required"
    daemon = Containerd(short_tempdir("dy-ct-"))
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        remove_tree(daemon.base)


def test_ctr_pull_platform_and_push(
    containerd: Containerd, client_env: ClientEnv, server: DockyardServer, images: dict[str, Layout]
) -> None:
    image = images["multiarch"]
    skopeo_copy(client_env, server, image.ref, docker_ref(server, "ct/multiarch:v1"), "--all")
    children = {c["platform"]["architecture"]: c["digest"] for c in image.children()}
    source, copy = f"{server.address}/ct/multiarch:v1", f"{server.address}/ct/arm-only:v1"
    try:
        ctr(containerd, server, "images", "pull", "--platform", "linux/arm64", source)
        listed = ctr(containerd, server, "images", "ls").stdout
        (row,) = [line for line in listed.splitlines() if line.startswith(f"{source} ")]
        assert image.top.digest in row, "the name points at the index"
        assert "linux/arm64" in row
        content = ctr(containerd, server, "content", "ls", "--quiet").stdout.split()
        assert children["arm64"] in content, "the arm64 child was fetched"
        assert children["amd64"] not in content, "the amd64 child was not"

        ctr(containerd, server, "images", "tag", source, copy)
        ctr(containerd, server, "images", "push", "--platform", "linux/arm64", copy)
    finally:
        ctr(containerd, server, "images", "rm", source, copy, check=False)

    with server.client() as http:
        pushed = http.get("/v2/ct/arm-only/manifests/v1", headers={"Accept": ACCEPT_ALL})
    assert pushed.status_code == 200, pushed.text
    # Only the arm64 content was fetched, so containerd pushes the arm64 manifest itself, byte for byte.
    assert sha256(pushed.content) == children["arm64"]
    assert pushed.content == image.blob_bytes(children["arm64"])
    assert json.loads(pushed.content)["config"] == json.loads(image.blob_bytes(children["arm64"]))["config"]
    check_consistent(server)
