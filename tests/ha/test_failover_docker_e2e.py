"""The failover test with Debian's docker engine as the client, as the issue's "Done when" tries it: docker
pushes distinct images through HAProxy while the node holding the database leader is killed whole; no push is
answered 500, pushes work again after the election, and every push docker reported done pulls back with the
digest docker printed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest
from ha_support import ADMIN, Cluster

from support.docker import DockerClient

pytestmark = pytest.mark.e2e

REPO = "ha/docker"
IMAGES = 16
KILL_AFTER = 4
_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def _archive(directory: Path, reference: str, number: int) -> Path:
    """A `docker load`-able image of one small random layer, tagged `reference`."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        data = os.urandom(2048) + str(number).encode()
        entry = tarfile.TarInfo(f"data/file-{number}")
        entry.size = len(data)
        tar.addfile(entry, io.BytesIO(data))
    diff_id = "sha256:" + hashlib.sha256(layer.getvalue()).hexdigest()
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    manifest = [{"Config": "config.json", "RepoTags": [reference], "Layers": ["layer.tar"]}]
    target = directory / f"image-{number}.tar"
    with tarfile.open(target, "w") as tar:
        for name, content in (
            ("layer.tar", layer.getvalue()),
            ("config.json", json.dumps(config).encode()),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            entry = tarfile.TarInfo(name)
            entry.size = len(content)
            tar.addfile(entry, io.BytesIO(content))
    return target


def test_docker_pushes_while_the_leaders_node_dies_lose_nothing_acknowledged(
    cluster: Cluster, docker: DockerClient, tmp_path: Path
) -> None:
    cluster.wait_whole()
    host = cluster.url.removeprefix("http://")
    docker("login", host, "-u", ADMIN[0], "--password-stdin", input=ADMIN[1])
    references = [f"{host}/{REPO}:{number}" for number in range(IMAGES)]
    for number, reference in enumerate(references):
        docker("load", "--input", str(_archive(tmp_path, reference, number)))
    acknowledged: dict[str, str] = {}
    outcomes: list[str] = []
    leader = cluster.leader()
    try:
        for number, reference in enumerate(references):
            if number == KILL_AFTER:
                cluster.node("kill-node", leader)
            pushed = docker("push", reference, check=False, timeout=300)
            output = pushed.stdout + pushed.stderr
            outcomes.append(output)
            found = _DIGEST.search(output)
            if pushed.returncode == 0 and found:
                acknowledged[reference] = found.group(1)
        assert not [o for o in outcomes if "500 Internal Server Error" in o], "a push was answered 500"
        # After the election every push works (docker retries through it on its own).
        assert all(reference in acknowledged for reference in references[-4:]), outcomes[-4:]
        assert cluster.leader() != leader
        for reference, digest in acknowledged.items():
            docker("rmi", reference)
            docker("pull", reference, timeout=300)
            pulled = docker("image", "inspect", "--format", "{{json .RepoDigests}}", reference).stdout
            assert f"{host}/{REPO}@{digest}" in json.loads(pulled), f"{reference} came back different"
    finally:
        cluster.node("start-node", leader)
        cluster.wait_whole()
