"""Caches over HTTPS: the registry's CA signs the cache's certificate (`dockyard certs issue`), so a client
that trusts the registry follows the redirect to the cache with nothing more to trust."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cache_support import (
    ADMIN_PASSWORD,
    USER_PASSWORD,
    CacheFactory,
    Main,
    answers,
    choose_cache,
    containerd,
    oras_pull,
    register_cache,
)

from support.docker import DockerClient
from support.images import BuiltImages
from support.processes import Service, free_port, run
from support.servers import dockyard_executable, environment_without
from support.tools import ContainerTools

pytestmark = pytest.mark.e2e

REPO = "admin/app"


@pytest.fixture
def https_main(tmp_path: Path) -> Iterator[Main]:
    """A registry serving HTTPS with a CA of its own (`dockyard certs init`), with users alice and bob."""
    data = tmp_path / "main"
    run([dockyard_executable(), "certs", "init", "--data-dir", data])
    port = free_port()
    env = environment_without(
        "DOCKYARD_", {"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD, "DOCKYARD_CACHE_CHECK_INTERVAL_SECONDS": "1"}
    )
    argv = [dockyard_executable(), "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"]
    service = Service("dockyard serve (https)", argv, tmp_path / "main.log", env)
    main = Main(f"https://127.0.0.1:{port}", data, data / "tls" / "ca.crt")
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(service.stop)
        service.start(lambda: answers(f"{main.url}/_ping", main.ca), 60)
        for user in ("alice", "bob"):
            assert (
                main.api("POST", "/users", json={"name": user, "password": USER_PASSWORD}).status_code == 201
            )
        yield main


def test_pull_through_an_https_cache_signed_by_the_registry_ca(
    https_main: Main,
    cache_node: CacheFactory,
    container_tools: ContainerTools,
    images: BuiltImages,
    tmp_path: Path,
    docker: DockerClient,
) -> None:
    main = https_main
    assert main.ca is not None
    cache_tls = tmp_path / "asia-tls"
    run([dockyard_executable(), "certs", "issue", "--data-dir", main.data_dir, "--to", cache_tls])
    certs = tmp_path / "client-certs"
    certs.mkdir()
    (certs / "ca.crt").write_bytes(main.ca.read_bytes())
    image = images.multilayer
    container_tools.skopeo(
        "copy", "--dest-cert-dir", str(certs), "--dest-creds", f"admin:{ADMIN_PASSWORD}",
        image.ref, f"docker://{main.address}/{REPO}:1", tls_verify=True,
    )  # fmt: skip
    assert main.api("PATCH", f"/repositories/{REPO}", json={"visibility": "public"}).status_code == 200
    manifest = image.document()
    blobs = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]

    asia = cache_node(
        "asia", main.url, "--upstream-ca", str(main.ca),
        "--tls-cert", str(cache_tls / "server.crt"), "--tls-key", str(cache_tls / "server.key"),
        ca=main.ca,
    )  # fmt: skip
    register_cache(main, "asia", asia.url, main.ca.read_text())
    choose_cache(main, "alice", "asia")

    container_tools.skopeo(
        "copy", "--src-cert-dir", str(certs), "--src-creds", f"alice:{USER_PASSWORD}",
        f"docker://{main.address}/{REPO}:1", f"dir:{tmp_path / 'pulled'}", tls_verify=True,
    )  # fmt: skip
    assert asia.ping()["misses"] == len(blobs)
    container_tools.podman(
        "pull", "--cert-dir", str(certs), "--creds", f"alice:{USER_PASSWORD}", f"{main.address}/{REPO}:1",
        tls_verify=True,
    )  # fmt: skip
    assert asia.ping()["hits"] == len(blobs)

    # ctr and oras-py trusting the CA; docker (to which 127.0.0.0/8 is insecure: TLS, unverified).
    # ctr takes a loopback registry for plain HTTP unless its hosts file says otherwise.
    hosts = tmp_path / "ctr-hosts"
    (hosts / main.address).mkdir(parents=True)
    (hosts / main.address / "hosts.toml").write_text(
        f'server = "{main.url}"\n[host."{main.url}"]\n  ca = "{main.ca}"\n'
    )
    with containerd(tmp_path / "containerd.log") as ctr:
        run([*ctr, "images", "pull", "--hosts-dir", str(hosts), "--user", f"alice:{USER_PASSWORD}",
             f"{main.address}/{REPO}:1"])  # fmt: skip
    assert asia.ping()["hits"] == 2 * len(blobs)
    oras_pull(main, "alice", REPO, images, tmp_path)
    assert asia.ping()["hits"] == 3 * len(blobs)
    reference = f"{main.address}/{REPO}:1"
    docker("login", "--username", "alice", "--password-stdin", main.address, input=USER_PASSWORD)
    try:
        docker("pull", reference)
    finally:
        docker("rmi", reference, check=False)
    assert asia.ping()["hits"] == 4 * len(blobs), "every client followed the redirect over HTTPS"
