"""Helpers for the protocol tests: throwaway PostgreSQL and reference registry, apps, pushes, manifests.

The shared fixtures promised in tests/conftest.py (postgres_server, reference_registry, free_port) had not
landed when this suite was written; these local ones follow the same contract.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.testclient import TestClient

from dockyard.app import Services, create_app
from dockyard.config import Settings, load_settings
from dockyard.registry.access import OpenAccess

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/usr/bin"))
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


# PostgreSQL


class PostgresServer:
    """A throwaway cluster on 127.0.0.1, trust authentication, superuser `postgres`."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="dy-pg-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._counter = 0
        as_postgres: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self._prefix = as_postgres
        data = self.base / "data"
        data.mkdir()
        if as_postgres:
            shutil.chown(self.base, "postgres")
            shutil.chown(data, "postgres")
        subprocess.run(
            [*as_postgres, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip
        log = (self.base / "postgres.log").open("wb")
        if as_postgres:
            shutil.chown(self.base / "postgres.log", "postgres")
        self.proc = subprocess.Popen(
            [*as_postgres, str(PG_BIN / "postgres"), "-D", str(data), "-h", "127.0.0.1",
             "-p", str(self.port), "-k", str(self.base), "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True
            )
            if ready.returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise AssertionError("PostgreSQL did not start: " + (self.base / "postgres.log").read_text())

    def url(self, name: str) -> str:
        """The SQLAlchemy URL of a database in this cluster."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def sql(self, statement: str) -> None:
        """Run one statement in the `postgres` database, autocommitting."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres") as conn:
            conn.autocommit = True
            conn.execute(statement.encode())

    def create_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        self._counter += 1
        name = f"dockyard_{os.getpid()}_{self._counter}"
        self.sql(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Remove a database, disconnecting whoever uses it."""
        name = url.rsplit("/", 1)[1]
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stop the cluster and remove its files."""
        if self.proc is not None:
            stop_process(self.proc)
        shutil.rmtree(self.base, ignore_errors=True)


# The reference registry (CNCF Distribution, Debian's docker-registry)


@dataclass
class ReferenceRegistry:
    """docker-registry on 127.0.0.1 with a filesystem store and deletes enabled, no authentication."""

    base: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Write the configuration and start; wait until /v2/ answers."""
        config = self.base / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.base / 'root'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
        )
        with (self.base / "registry.log").open("wb") as log:
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(f"{self.url}/v2/", self.proc)

    def stop(self) -> None:
        """Stop it."""
        if self.proc is not None:
            stop_process(self.proc)


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
