"""Fixtures for the end-to-end tests: live `dockyard serve` processes, isolated clients, cached images.

The shared fixtures promised in tests/conftest.py and tests/support/ had not landed when these tests were
written, so this file provides what the e2e suite needs itself (see e2e_support.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_support import (
    ClientEnv,
    Descriptor,
    DockerEngine,
    DockyardServer,
    Layout,
    LayoutWriter,
    busybox_bytes,
    clean_env,
    free_port,
    pseudo_random,
    remove_tree,
    short_tempdir,
    tar_layer,
)

ServerFactory = Callable[..., DockyardServer]
# The `admin` account every test server bootstraps with (DOCKYARD_ADMIN_PASSWORD); clients use server.creds.
ADMIN_PASSWORD = "e2e-admin-password"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this directory drives real clients against a live server."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def dockyard_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Factory: start `dockyard serve` on a free port with a fresh data directory; all stopped at the end."""
    started: list[DockyardServer] = []

    def start(data_dir: Path | None = None, creds: tuple[str, str] | None = None) -> DockyardServer:
        index = len(started)
        server = DockyardServer(
            data_dir=data_dir or tmp_path / f"data{index}",
            port=free_port(),
            log_path=tmp_path / f"serve{index}.log",
            creds=creds or ("admin", ADMIN_PASSWORD),
            env=clean_env(DOCKYARD_ADMIN_PASSWORD=ADMIN_PASSWORD),
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def server(dockyard_server: ServerFactory) -> DockyardServer:
    """One running registry."""
    return dockyard_server()


@pytest.fixture(scope="session")
def client_env() -> Iterator[ClientEnv]:
    """Isolated auth files and containers-storage for skopeo, podman, buildah and docker."""
    base = short_tempdir("dy-e2e-")
    try:
        yield ClientEnv(base)
    finally:
        remove_tree(base)


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Layout]:
    """OCI layouts, built once per session.

    single: one busybox layer; multilayer: three layers; multiarch: an index of amd64 and arm64;
    big: three 24 MiB incompressible layers stored uncompressed, so pushing makes the client gzip slowly.
    """
    root = tmp_path_factory.mktemp("layouts")
    busybox = busybox_bytes()
    layouts: dict[str, Layout] = {}

    def make(name: str, build: Callable[[LayoutWriter], Descriptor]) -> None:
        writer = LayoutWriter(root / name)
        top = build(writer)
        writer.tag(top, "v1")
        layouts[name] = Layout(root / name, "v1", top)

    make("single", lambda w: w.image([tar_layer({"bin/busybox": busybox})], label="single"))
    make(
        "multilayer",
        lambda w: w.image(
            [
                tar_layer({"bin/busybox": busybox}),
                tar_layer({"etc/motd": b"welcome to dockyard\n"}, mode=0o644),
                tar_layer({"data/blob.bin": pseudo_random("multilayer", 300_000)}, mode=0o644),
            ],
            label="multilayer",
        ),
    )
    make(
        "multiarch",
        lambda w: w.index(
            [
                w.image([tar_layer({"bin/busybox": busybox}), tar_layer({"arch": b"amd64\n"})], "amd64"),
                w.image(
                    [tar_layer({"bin/busybox": busybox[::-1]}), tar_layer({"arch": b"arm64\n"})], "arm64"
                ),
            ]
        ),
    )
    make(
        "big",
        lambda w: w.image(
            [tar_layer({f"data/{i}.bin": pseudo_random(f"big{i}", 24 << 20)}) for i in range(3)],
            compress=False,
            label="big",
        ),
    )
    return layouts


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A private dockerd for the session."""
    assert shutil.which("dockerd"), "dockerd is required for the docker end-to-end tests"
    engine = DockerEngine(short_tempdir("dy-dk-"))
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()
        remove_tree(engine.base)
