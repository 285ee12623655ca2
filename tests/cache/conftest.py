"""Fixtures for content caches: a main registry with users alice and bob, and cache nodes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cache_support import ADMIN_PASSWORD, USER_PASSWORD, CacheFactory, CacheNode, Main

from support import DockyardServer
from support.processes import Service, free_port
from support.servers import dockyard_executable, environment_without


@pytest.fixture
def main(dockyard_server: Callable[..., DockyardServer]) -> Main:
    """A main registry that checks its caches every second, with users alice and bob."""
    server = dockyard_server(
        env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD, "DOCKYARD_CACHE_CHECK_INTERVAL_SECONDS": "1"}
    )
    registry = Main(server.url, server.data_dir)
    for user in ("alice", "bob"):
        created = registry.api("POST", "/users", json={"name": user, "password": USER_PASSWORD})
        assert created.status_code == 201, created.text
    return registry


@pytest.fixture
def cache_node(tmp_path: Path) -> Iterator[CacheFactory]:
    """Factory: start `dockyard cache serve` for an upstream; every node is stopped at the end."""
    with contextlib.ExitStack() as cleanup:

        def start(
            name: str, upstream: str, *options: str, data_dir: Path | None = None, ca: Path | None = None
        ) -> CacheNode:
            port = free_port()
            directory = data_dir or tmp_path / f"cache-{name}"
            argv = [
                dockyard_executable(), "cache", "serve", "--upstream", upstream,
                "--data-dir", directory, "--listen", f"127.0.0.1:{port}", *options,
            ]  # fmt: skip
            log = tmp_path / f"cache-{name}.log"
            service = Service(f"cache {name}", argv, log, environment_without("DOCKYARD_"))
            node = CacheNode(name, port, directory, service, ca)
            cleanup.callback(node.stop)
            node.start()
            return node

        yield start
