"""A full disk is survivable: a live server whose data directory (database and blobs) is on a small tmpfs.

Each test fills the disk (with a push, or with a file beside the registry's), checks the failure is a clean
507 in OCI JSON whose partial bytes are gone at once, then pushes again successfully without a restart.
Mounting needs root (the test suite runs as root); as another user these tests are skipped, saying so.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from registry_client import (
    OCI_MANIFEST,
    manifest_for,
    push_image,
    push_manifest,
    push_monolithic,
    sha256,
    start_upload,
)

from support import DockyardFactory, DockyardServer
from support.servers import dockyard_executable, environment_without

PASSWORD = "full-disk-admin-password"
MiB = 1 << 20

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


def _free(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def _fill(disk: Path, leave: int = 0) -> Path:
    """Write a file beside the registry's until the disk is full (or `leave` bytes remain)."""
    filler = disk / f"filler{time.monotonic_ns()}"
    with filler.open("wb") as handle:
        for block in (MiB, 64 << 10, 4 << 10):
            while _free(disk) - block >= leave:
                try:
                    handle.write(b"\0" * block)
                    handle.flush()
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    handle.truncate(handle.tell() - block if handle.tell() >= block else 0)
                    break
    if leave == 0:
        assert _free(disk) < 64 << 10
    return filler


@pytest.fixture
def registry(dockyard_server: DockyardFactory, small_disk: Path) -> Callable[..., DockyardServer]:
    """Starts `dockyard serve` with its data directory on the small disk."""

    def start(**env: str) -> DockyardServer:
        return dockyard_server(
            env={"DOCKYARD_ADMIN_PASSWORD": PASSWORD, "DOCKYARD_SCAN_WORKERS": "0", **env},
            data_dir=small_disk / "data",
        )

    return start


def _client(server: DockyardServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=("admin", PASSWORD), timeout=60)


def _upload_files(disk: Path) -> list[Path]:
    uploads = disk / "data" / "storage" / "uploads"
    return [p for p in uploads.rglob("*") if p.is_file()] if uploads.exists() else []


def _assert_small_push_works(server: DockyardServer, tag: str) -> None:
    """A new image pushes and pulls back whole, with no restart in between."""
    config, layer = json.dumps({"tag": tag}).encode(), os.urandom(256 << 10)
    with _client(server) as client:
        digest = push_image(client, "full/app", tag, config, [layer])
        pulled = client.get(f"/v2/full/app/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        assert pulled.status_code == 200
        assert pulled.headers["Docker-Content-Digest"] == digest
        assert client.get(f"/v2/full/app/blobs/{sha256(layer)}").content == layer
    # Every failure on the way was expected and handled: none was an internal error (500).
    assert "unexpected failure on" not in server.log(tail=10**6)


class Answer:
    """A response read by curl."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status_code = status
        self.headers = httpx.Headers(headers)
        self.body = body

    def json(self) -> dict[str, list[dict[str, str]]]:
        """The body as JSON."""
        parsed: dict[str, list[dict[str, str]]] = json.loads(self.body)
        return parsed


def _curl(
    server: DockyardServer, method: str, location: str, body: Path, work: Path, **params: str
) -> Answer:
    """Send `body` streamed, with curl: it stops sending and reads the answer when the server answers
    early, as Go clients (docker, skopeo) do; httpx would report a dropped connection instead."""
    url = httpx.URL(server.url).join(location).copy_merge_params(params)
    head, out = work / "curl-headers", work / "curl-body"
    done = subprocess.run(
        ["curl", "-sS", "-u", f"admin:{PASSWORD}", "-X", method, "-T", str(body), "-H", "Expect:",
         "-H", "Content-Type: application/octet-stream", "-D", str(head), "-o", str(out),
         "-w", "%{http_code}", str(url)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.stdout.isdigit() and done.stdout != "000", done.stderr
    lines = head.read_text().splitlines()
    headers = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:]) if v}
    return Answer(int(done.stdout), headers, out.read_bytes())


def _assert_full(response: httpx.Response | Answer) -> None:
    assert response.status_code == 507, response.json()
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    errors = response.json()["errors"]
    assert errors[0]["code"] == "UNKNOWN"
    assert "no storage space left" in errors[0]["message"]


def _push_too_big(server: DockyardServer, location: str, shape: str, data: Path, work: Path) -> Answer:
    if shape == "monolithic PUT":
        return _curl(server, "PUT", location, data, work, digest=sha256(data.read_bytes()))
    if shape == "one streamed PATCH":
        return _curl(server, "PATCH", location, data, work)
    chunk = work / "chunk"
    with data.open("rb") as source:
        while piece := source.read(2 * MiB):
            chunk.write_bytes(piece)
            answer = _curl(server, "PATCH", location, chunk, work)
            if answer.status_code != 202:
                return answer
            location = answer.headers["Location"]
    raise AssertionError("every chunk was accepted")


@pytest.mark.parametrize("shape", ["monolithic PUT", "one streamed PATCH", "chunked PATCH"])
def test_a_push_larger_than_the_disk_fails_cleanly_and_frees_its_bytes(
    registry: Callable[..., DockyardServer], small_disk: Path, tmp_path: Path, shape: str
) -> None:
    server = registry()
    before = _free(small_disk)
    data = tmp_path / "too-big"
    data.write_bytes(os.urandom(before + 4 * MiB))
    with _client(server) as client:
        location = start_upload(client, "full/big")
        _assert_full(_push_too_big(server, location, shape, data, tmp_path))
        # Released at once: no upload bytes left, the space back (give or take the database's pages).
        assert _upload_files(small_disk) == []
        assert _free(small_disk) > before - MiB
        # The session is gone with its bytes.
        session = client.get(location)
        assert session.status_code == 404
        assert session.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
        assert client.head(f"/v2/full/big/blobs/{sha256(data.read_bytes())}").status_code == 404
    _assert_small_push_works(server, "after")


def test_disk_filled_by_something_else_then_freed(
    registry: Callable[..., DockyardServer], small_disk: Path, tmp_path: Path
) -> None:
    """Writes fail while nothing is free, and work again once space returns: no restart, no stuck state."""
    server = registry()
    filler = _fill(small_disk)
    data = tmp_path / "blob"
    data.write_bytes(os.urandom(MiB))
    with _client(server) as client:
        # Opening the session already writes to the database, whose journal may have no room left.
        opened = client.post("/v2/full/app/blobs/uploads/")
        if opened.status_code == 202:
            location = opened.headers["Location"]
            _assert_full(_push_too_big(server, location, "monolithic PUT", data, tmp_path))
        else:
            _assert_full(opened)
        assert _upload_files(small_disk) == []
    filler.unlink()
    _assert_small_push_works(server, "after")


def test_manifest_push_on_a_full_disk(registry: Callable[..., DockyardServer], small_disk: Path) -> None:
    """The database's own disk full (SQLITE_FULL): 507, no tag pointing at nothing, and it works later."""
    server = registry()
    config, layer = b'{"manifest": "test"}', b"a small layer"
    with _client(server) as client:
        push_image(client, "full/app", "base", config, [layer])
        document = json.loads(manifest_for(config, [layer]))
        # Larger than what the database's journal can absorb in the space it already holds.
        document["annotations"] = {"padding": "x" * (3 * MiB)}
        content = json.dumps(document).encode()
        filler = _fill(small_disk)
        _assert_full(push_manifest(client, "full/app", "big", content))
        assert client.get("/v2/full/app/tags/list").json()["tags"] == ["base"]
        missing = client.get("/v2/full/app/manifests/big", headers={"Accept": OCI_MANIFEST})
        assert missing.status_code == 404
        # Reads go on while the disk is full.
        assert client.get(f"/v2/full/app/blobs/{sha256(layer)}").content == layer
        filler.unlink()
        assert push_manifest(client, "full/app", "big", content).status_code == 201
        pulled = client.get("/v2/full/app/manifests/big", headers={"Accept": OCI_MANIFEST})
        assert pulled.content == content
    _assert_small_push_works(server, "after")


def test_cancel_on_a_full_disk_frees_the_upload(
    registry: Callable[..., DockyardServer], small_disk: Path
) -> None:
    server = registry()
    with _client(server) as client:
        location = start_upload(client, "full/app")
        partial = client.patch(location, content=os.urandom(6 * MiB))
        assert partial.status_code == 202, partial.text
        location = partial.headers["Location"]
        filler = _fill(small_disk)
        cancelled = client.delete(location)
        assert cancelled.status_code == 204, cancelled.text
        assert _upload_files(small_disk) == []
        assert _free(small_disk) >= 5 * MiB
        assert client.get(location).status_code == 404
    # The space the cancel gave back is enough for a push, even with the filler still there.
    _assert_small_push_works(server, "after")
    filler.unlink()


def _gc(disk: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(dockyard_executable()), "gc", "--data-dir", str(disk / "data"), *args],
        env=environment_without("DOCKYARD_", {"DOCKYARD_UPLOAD_EXPIRY_SECONDS": "1"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_collector_expires_uploads_and_blobs_on_a_full_disk(
    registry: Callable[..., DockyardServer], small_disk: Path
) -> None:
    server = registry(DOCKYARD_UPLOAD_EXPIRY_SECONDS="1")
    garbage = os.urandom(4 * MiB)
    with _client(server) as client:
        assert push_monolithic(client, "full/app", garbage).status_code == 201
        location = start_upload(client, "full/app")
        assert client.patch(location, content=os.urandom(5 * MiB)).status_code == 202
        filler = _fill(small_disk)
        time.sleep(1.1)  # the upload expires
        collected = _gc(small_disk, "--grace", "0")
        assert collected.returncode == 0, collected.stderr + collected.stdout
        assert "1 blobs, 1 uploads" in collected.stdout
        assert "removals failed" not in collected.stderr
        assert _upload_files(small_disk) == []
        assert _free(small_disk) >= 8 * MiB
        assert client.head(f"/v2/full/app/blobs/{sha256(garbage)}").status_code == 404
        assert client.get(location).status_code == 404
    _assert_small_push_works(server, "after")
    filler.unlink()
