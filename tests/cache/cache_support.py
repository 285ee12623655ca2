"""Helpers for the cache tests: a main registry with users, cache nodes, pushes and pulls."""

from __future__ import annotations

import contextlib
import shutil
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.images import BuiltImages
from support.processes import Service, run, short_tempdir
from support.tools import ContainerTools

ADMIN_PASSWORD = "cache-admin-password"
USER_PASSWORD = "cache-user-password"


@dataclass
class CacheNode:
    """A running `dockyard cache serve`."""

    name: str
    port: int
    data_dir: Path
    service: Service
    # Set when the node serves HTTPS: the CA that signed its certificate.
    ca: Path | None = None

    @property
    def url(self) -> str:
        """Base URL."""
        return f"{'https' if self.ca else 'http'}://127.0.0.1:{self.port}"

    def ping(self) -> dict[str, int]:
        """The node's /_ping document."""
        return dict(httpx.get(f"{self.url}/_ping", timeout=10, verify=trust(self.ca)).json())

    def stored_files(self) -> list[Path]:
        """The blob files on the node's disk."""
        return [p for p in (self.data_dir / "blobs").rglob("*") if p.is_file()]

    def start(self) -> None:
        """Start (again) on the same port and data directory."""
        self.service.start(lambda: answers(f"{self.url}/_ping", self.ca), 30)

    def stop(self) -> None:
        """Stop the node."""
        self.service.stop(10)


def trust(ca: Path | None) -> ssl.SSLContext | bool:
    """httpx's `verify` for a server whose certificate `ca` signed (None: the system's trust)."""
    return ssl.create_default_context(cafile=str(ca)) if ca else True


def answers(url: str, ca: Path | None = None) -> bool:
    """Whether GET url answers 200 (over HTTPS, trusting `ca`)."""
    try:
        return httpx.get(url, timeout=2, verify=trust(ca)).status_code == 200
    except httpx.HTTPError:
        return False


CacheFactory = Callable[..., CacheNode]


@dataclass
class Main:
    """The main registry, with an administrator client for its API."""

    url: str
    data_dir: Path
    # The CA certificate to trust when the registry serves HTTPS.
    ca: Path | None = None

    @property
    def address(self) -> str:
        """HOST:PORT, as image references spell it."""
        return self.url.partition("://")[2]

    def api(self, method: str, path: str, user: str = "admin", **kwargs: object) -> httpx.Response:
        """Call /api/v1 with Basic credentials."""
        password = ADMIN_PASSWORD if user == "admin" else USER_PASSWORD
        return httpx.request(
            method,
            f"{self.url}/api/v1{path}",
            auth=(user, password),
            timeout=30,
            verify=trust(self.ca),
            **kwargs,  # type: ignore[arg-type]
        )

    def wait_cache_state(self, name: str, healthy: bool, timeout: float = 20) -> None:
        """Until the registry's health check found the cache up (or down)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.api("GET", f"/caches/{name}")
            if answer.status_code == 200 and answer.json()["healthy"] is healthy:
                return
            time.sleep(0.3)
        raise AssertionError(f"cache {name} never became {'healthy' if healthy else 'unhealthy'}")


def register_cache(main: Main, name: str, url: str, ca_pem: str | None = None) -> None:
    """Register a cache with the main registry (with the CA of its HTTPS certificate, if given), and wait
    until its health check found it up."""
    body = {"name": name, "url": url} | ({"ca_certificate": ca_pem} if ca_pem else {})
    answer = main.api("POST", "/caches", json=body)
    assert answer.status_code == 201, answer.text
    main.wait_cache_state(name, healthy=True)


def choose_cache(main: Main, user: str, cache: str | None) -> None:
    """Set (or clear, with None) the cache a user's pulls go through."""
    answer = main.api("PATCH", "/me", user=user, json={"cache": cache})
    assert answer.status_code == 200, answer.text
    assert answer.json()["cache"] == cache


def serve_alice_from_asia(main: Main, cache_node: CacheFactory) -> CacheNode:
    """The common set-up: start cache "asia" for the main registry, register it, and choose it for alice."""
    asia = cache_node("asia", main.url)
    register_cache(main, "asia", asia.url)
    choose_cache(main, "alice", "asia")
    return asia


def push_image(main: Main, tools: ContainerTools, images: BuiltImages, repository: str) -> list[str]:
    """Push the multi-layer test image as admin into a public repository; its blob digests."""
    image = images.multilayer
    tools.skopeo(
        "copy",
        "--dest-creds",
        f"admin:{ADMIN_PASSWORD}",
        image.ref,
        f"docker://{main.address}/{repository}:1",
    )
    made_public = main.api("PATCH", f"/repositories/{repository}", json={"visibility": "public"})
    assert made_public.status_code == 200, made_public.text
    manifest = image.document()
    return [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]


def pull(main: Main, tools: ContainerTools, user: str, repository: str, dest: Path) -> None:
    """Pull through the main registry's URL, as a user, with skopeo."""
    tools.skopeo(
        "copy",
        "--src-creds",
        f"{user}:{USER_PASSWORD}",
        f"docker://{main.address}/{repository}:1",
        f"dir:{dest}",
    )


@contextlib.contextmanager
def containerd(log: Path) -> Iterator[list[str]]:
    """A private containerd (no CRI plugin); yields the `ctr` command line that talks to it."""
    assert shutil.which("containerd") and shutil.which("ctr"), "containerd and ctr come with docker.io"
    base = short_tempdir("dyc-ctr-")
    (base / "config.toml").write_text('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
    socket = base / "c.sock"
    daemon = Service(
        "containerd",
        ["containerd", "--config", base / "config.toml", "--address", socket,
         "--root", base / "root", "--state", base / "state"],
        log,
    )  # fmt: skip
    ctr = ["ctr", "--address", str(socket), "-n", "dockyard-cache"]
    try:
        daemon.start(lambda: run([*ctr, "version"], check=False, timeout=20).returncode == 0, 60)
        yield ctr
    finally:
        daemon.stop(20)
        shutil.rmtree(base, ignore_errors=True)


def oras_pull(main: Main, user: str, repository: str, images: BuiltImages, dest: Path) -> None:
    """Pull every blob of the image with oras-py (plain HTTP, or HTTPS trusting the registry's CA)."""
    import oras.client

    trust: bool | str = str(main.ca) if main.ca is not None else True
    client = oras.client.OrasClient(hostname=main.address, insecure=main.ca is None, tls_verify=trust)
    client.auth.set_basic_auth(user, USER_PASSWORD)
    container = client.get_container(f"{main.address}/{repository}:1")
    manifest = client.get_manifest(container)
    for descriptor in [manifest["config"], *manifest["layers"]]:
        path = client.download_blob(container, descriptor["digest"], str(dest / descriptor["digest"][7:]))
        assert Path(path).read_bytes() == images.multilayer.blob(descriptor["digest"])
