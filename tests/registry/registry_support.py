"""Helpers for the protocol tests: in-process apps, processes, pushes, manifests.

PostgreSQL, the reference registry and free ports come from the shared fixtures (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from starlette.testclient import TestClient

from dockyard.app import Services, create_app
from dockyard.config import Settings, load_settings
from dockyard.registry.access import OpenAccess

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data: bytes) -> str:
    """The sha256 digest string of some bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Poll until `url` answers below 500, or fail when the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(15)


# Dockyard apps in-process


def sqlite_settings(data_dir: Path, **extra: Any) -> Settings:
    """Settings with everything (SQLite included) in `data_dir`."""
    return load_settings(data_dir=data_dir, gc_interval_seconds=3600, **extra)


def open_client(settings: Settings) -> TestClient:
    """A TestClient on a new app (new services: nothing shared in memory with other apps)."""
    return TestClient(create_app(settings, access=OpenAccess()), raise_server_exceptions=False)


@contextlib.contextmanager
def running(settings: Settings) -> Iterator[TestClient]:
    """A new app on these settings, lifespan running."""
    with open_client(settings) as client:
        yield client


ADMIN_PASSWORD = "admin-password-1"
USER_PASSWORD = "user-password-1"


@contextlib.contextmanager
def guarded(data_dir: Path, users: Sequence[str] = (), **extra: Any) -> Iterator[TestClient]:
    """An app with access control on (no scan workers), with `admin` and these users (USER_PASSWORD);
    `extra` settings on top."""
    settings = sqlite_settings(data_dir, admin_password=ADMIN_PASSWORD, scan_workers=0, **extra)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for user in users:
            services_of(client).auth.accounts.create_user(None, user, USER_PASSWORD)
        yield client


def registry_token(client: TestClient, user: str | None, scopes: Sequence[str]) -> str:
    """A registry token from GET /auth/token: anonymous when `user` is None."""
    auth = None if user is None else (user, ADMIN_PASSWORD if user == "admin" else USER_PASSWORD)
    response = client.get("/auth/token", params={"service": "dockyard", "scope": list(scopes)}, auth=auth)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def services_of(client: TestClient) -> Services:
    """The services behind a TestClient's app."""
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


# Pushing content


def push_blob(client: TestClient | httpx.Client, name: str, data: bytes) -> str:
    """Monolithic upload (POST ?digest=); returns the digest."""
    digest = sha256(data)
    response = client.post(
        f"/v2/{name}/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    return digest


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    """A content descriptor for some bytes."""
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def image_manifest(
    client: TestClient | httpx.Client,
    name: str,
    *,
    seed: str = "a",
    media_type: str = OCI_MANIFEST,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """Push a config and one layer, return the bytes of a manifest referencing them (not pushed)."""
    docker = media_type == DOCKER_MANIFEST
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = f"layer-{seed}".encode() * 10
    push_blob(client, name, config)
    push_blob(client, name, layer)
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config),
        "layers": [descriptor(DOCKER_LAYER if docker else OCI_LAYER, layer)],
    }
    document.update(extra or {})
    return json.dumps(document).encode()


def put_manifest(
    client: TestClient | httpx.Client, name: str, reference: str, content: bytes, media_type: str
) -> httpx.Response:
    """PUT a manifest."""
    return client.put(
        f"/v2/{name}/manifests/{reference}", content=content, headers={"Content-Type": media_type}
    )


def index_of(media_type: str, *children: tuple[str, bytes]) -> bytes:
    """An index (OCI or Docker list) of (media type, bytes) children."""
    manifests = [
        descriptor(child_type, content, platform={"architecture": f"arch{i}", "os": "linux"})
        for i, (child_type, content) in enumerate(children)
    ]
    return json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}).encode()


def error_codes(response: httpx.Response) -> list[str]:
    """The OCI error codes in a response body."""
    body = response.json()
    return [e["code"] for e in body["errors"]]
