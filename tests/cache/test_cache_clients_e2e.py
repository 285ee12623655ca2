"""Real clients follow the registry's redirect to the user's cache with no special flags: podman, docker,
containerd's ctr and oras-py.

The registry's own view of the cache (GET /api/v1/caches/NAME, from its pings) shows the same counters.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cache_support import (
    USER_PASSWORD,
    CacheFactory,
    CacheNode,
    Main,
    choose_cache,
    containerd,
    oras_pull,
    push_image,
    serve_alice_from_asia,
)

from support.docker import DockerClient
from support.images import BuiltImages
from support.processes import run
from support.tools import ContainerTools

pytestmark = pytest.mark.e2e

REPO = "admin/app"


def _check_filled(main: Main, asia: CacheNode, images: BuiltImages, blobs: list[str]) -> None:
    stats = asia.ping()
    assert stats["misses"] == len(blobs), "every blob came through the cache"
    assert stats["bytes_fetched"] == sum(len(images.multilayer.blob(d)) for d in blobs)
    deadline = time.monotonic() + 10
    while main.api("GET", "/caches/asia").json()["stats"].get("misses") != len(blobs):
        assert time.monotonic() < deadline, "the registry's view of the cache never caught up"
        time.sleep(0.3)


def test_podman_pulls_from_the_cache(
    main: Main, cache_node: CacheFactory, container_tools: ContainerTools, images: BuiltImages
) -> None:
    blobs = push_image(main, container_tools, images, REPO)
    asia = serve_alice_from_asia(main, cache_node)
    container_tools.podman("pull", "--creds", f"alice:{USER_PASSWORD}", f"{main.address}/{REPO}:1")
    _check_filled(main, asia, images, blobs)


def test_docker_pulls_from_the_cache(
    main: Main,
    cache_node: CacheFactory,
    container_tools: ContainerTools,
    images: BuiltImages,
    docker: DockerClient,
) -> None:
    blobs = push_image(main, container_tools, images, REPO)
    asia = serve_alice_from_asia(main, cache_node)
    reference = f"{main.address}/{REPO}:1"
    docker("login", "--username", "alice", "--password-stdin", main.address, input=USER_PASSWORD)
    try:
        docker("pull", reference)
        _check_filled(main, asia, images, blobs)
        # A second user of the same cache: served from what alice's pull left there.
        docker("rmi", reference)
        choose_cache(main, "bob", "asia")
        docker("login", "--username", "bob", "--password-stdin", main.address, input=USER_PASSWORD)
        docker("pull", reference)
        stats = asia.ping()
        assert stats["hits"] == len(blobs) and stats["misses"] == len(blobs)
    finally:
        docker("rmi", reference, check=False)


def test_ctr_pulls_from_the_cache(
    main: Main, cache_node: CacheFactory, container_tools: ContainerTools, images: BuiltImages, tmp_path: Path
) -> None:
    blobs = push_image(main, container_tools, images, REPO)
    asia = serve_alice_from_asia(main, cache_node)
    with containerd(tmp_path / "containerd.log") as ctr:
        run([*ctr, "images", "pull", "--plain-http", "--user", f"alice:{USER_PASSWORD}",
             f"{main.address}/{REPO}:1"])  # fmt: skip
    _check_filled(main, asia, images, blobs)


def test_oras_pulls_from_the_cache(
    main: Main, cache_node: CacheFactory, container_tools: ContainerTools, images: BuiltImages, tmp_path: Path
) -> None:
    blobs = push_image(main, container_tools, images, REPO)
    asia = serve_alice_from_asia(main, cache_node)
    oras_pull(main, "alice", REPO, images, tmp_path)
    _check_filled(main, asia, images, blobs)
