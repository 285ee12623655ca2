"""kill -9 of the server in the middle of pushes, then a restart on the same data directory.

After every crash: /_ping is 200; a blob is visible only when its digest was fully verified; no tag points
at a missing manifest and every blob a manifest references is there; every file of the blob store hashes
to its own name; and the push, retried, succeeds and pulls back identical.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from e2e_support import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    ClientEnv,
    DockyardServer,
    Layout,
    blob_files,
    check_consistent,
    docker_ref,
    pseudo_random,
    sha256,
    skopeo,
    skopeo_copy,
    skopeo_copy_process,
)

pytestmark = pytest.mark.e2e

ServerFactory = Callable[..., DockyardServer]
CHUNK = 256 * 1024


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll until `condition` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def upload_data_size(server: DockyardServer, upload_id: str) -> int:
    """How many bytes of an upload the server has written to disk so far."""
    path = server.storage_dir / "uploads" / upload_id / "data"
    return path.stat().st_size if path.exists() else 0


class SlowBody:
    """A request body streamed in small chunks; after `fast_bytes` it slows right down."""

    def __init__(self, data: bytes, fast_bytes: int) -> None:
        self.data = data
        self.fast_bytes = fast_bytes
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for offset in range(0, len(self.data), CHUNK):
            piece = self.data[offset : offset + CHUNK]
            yield piece
            self.sent += len(piece)
            if self.sent >= self.fast_bytes:
                time.sleep(0.05)


def send_in_background(request: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[object]]:
    """Run a request in a thread; the list receives its response or the exception it raised."""
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(request())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def head_status(server: DockyardServer, repo: str, digest: str) -> int:
    """HEAD /v2/<repo>/blobs/<digest>."""
    with server.client() as http:
        return http.head(f"/v2/{repo}/blobs/{digest}").status_code


def upload_blob(http: httpx.Client, repo: str, data: bytes) -> str:
    """POST a session, PUT the whole blob with ?digest=; returns the digest."""
    digest = sha256(data)
    start = http.post(f"/v2/{repo}/blobs/uploads/")
    assert start.status_code == 202, start.text
    done = http.put(start.headers["location"], params={"digest": digest}, content=data)
    assert done.status_code == 201, done.text
    return digest


def image_parts(seed: str, layer_size: int) -> tuple[bytes, bytes, bytes]:
    """A config, one gzip layer, and the OCI manifest naming them."""
    layer = gzip.compress(pseudo_random(seed, layer_size), mtime=0)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256(layer), "size": len(layer)}],
        }
    ).encode()
    return config, layer, manifest


@pytest.mark.parametrize("method", ["patch", "monolithic-put"])
def test_kill_mid_upload_of_a_large_blob(dockyard_server: ServerFactory, method: str) -> None:
    server = dockyard_server()
    repo = "crash/midpatch"
    blob = pseudo_random(f"mid-{method}", 48 << 20)
    digest = sha256(blob)
    with server.client() as http:
        start = http.post(f"/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202
        location = start.headers["location"]
    upload_id = location.rsplit("/", 1)[1]

    body = SlowBody(blob, fast_bytes=8 << 20)
    with httpx.Client(base_url=server.url, timeout=60, auth=server.creds) as streaming:
        if method == "patch":
            thread, outcome = send_in_background(
                lambda: streaming.patch(
                    location, content=body, headers={"Content-Type": "application/octet-stream"}
                )
            )
        else:
            thread, outcome = send_in_background(
                lambda: streaming.put(location, params={"digest": digest}, content=body)
            )
        # The server has written a good part of the body to disk: now it dies.
        wait_for(lambda: upload_data_size(server, upload_id) >= 4 << 20, 60, "the server to write 4 MiB")
        server.kill()
        thread.join(60)
    assert not thread.is_alive()
    assert outcome and isinstance(outcome[0], httpx.HTTPError), f"the request cannot succeed: {outcome}"
    assert body.sent < len(blob)

    server.start()
    assert head_status(server, repo, digest) == 404, "a blob whose upload never completed is not visible"
    assert check_consistent(server).get(repo, {}) == {}
    assert not any(path.name == digest.split(":", 1)[1] for path in blob_files(server))

    with server.client() as http:
        # The session survived at its last recorded size (nothing was acknowledged), and resumes from there.
        status = http.get(location)
        assert status.status_code == 204, status.text
        assert status.headers["range"] == "0-0"
        chunk = http.patch(location, content=blob, headers={"Content-Type": "application/octet-stream"})
        assert chunk.status_code == 202, chunk.text
        assert chunk.headers["range"] == f"0-{len(blob) - 1}"
        done = http.put(location, params={"digest": digest})
        assert done.status_code == 201, done.text
        pulled = http.get(f"/v2/{repo}/blobs/{digest}")
        assert pulled.status_code == 200
        assert pulled.content == blob
    check_consistent(server)


def test_kill_after_blobs_before_manifest(dockyard_server: ServerFactory) -> None:
    server = dockyard_server()
    repo = "crash/nomanifest"
    config, layer, manifest = image_parts("after-upload", 6 << 20)
    with server.client() as http:
        upload_blob(http, repo, config)
        upload_blob(http, repo, layer)
    server.kill()  # acknowledged with 201: the blobs must survive; no manifest was pushed

    server.start()
    seen = check_consistent(server)
    assert seen.get(repo, {}) == {}, "no tag can exist before a manifest was pushed"
    with server.client() as http:
        for data in (config, layer):
            response = http.get(f"/v2/{repo}/blobs/{sha256(data)}")
            assert response.status_code == 200
            assert response.content == data
        put = http.put(f"/v2/{repo}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST})
        assert put.status_code == 201, put.text
        assert put.headers["docker-content-digest"] == sha256(manifest)
    server.kill()  # right after the manifest was acknowledged: the tag must survive too

    server.start()
    assert check_consistent(server)[repo] == {"v1": sha256(manifest)}
    with server.client() as http:
        got = http.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert got.content == manifest


def test_kill_during_a_multi_blob_skopeo_push(
    dockyard_server: ServerFactory, client_env: ClientEnv, images: dict[str, Layout], tmp_path: Path
) -> None:
    server = dockyard_server()
    image = images["big"]  # three 24 MiB uncompressed layers: skopeo gzips them on the way, slowly
    target = docker_ref(server, "crash/skopeo:v1")
    push = skopeo_copy_process(client_env, server, image.ref, target)
    try:
        uploads = server.storage_dir / "uploads"
        wait_for(
            lambda: any(p.stat().st_size > 0 for p in uploads.glob("*/data")) if uploads.exists() else False,
            90,
            "skopeo's first upload bytes to reach the server",
        )
        time.sleep(0.25)  # a fixed delay into the push
        assert push.poll() is None, "skopeo finished before the crash; the image is too small to interrupt"
        server.kill()
        _, stderr = push.communicate(timeout=120)
    finally:
        if push.poll() is None:
            push.kill()
            push.wait(10)
    assert push.returncode != 0, "skopeo cannot finish a push to a server that died"
    assert stderr

    server.start()
    seen = check_consistent(server)
    assert seen.get("crash/skopeo", {}) == {}, "the manifest was never pushed, so the tag cannot exist"
    config_digest = json.loads(image.manifest_bytes())["config"]["digest"]
    config_status = head_status(server, "crash/skopeo", config_digest)
    assert config_status in {200, 404}

    # skopeo compressed the layers itself, so their pushed digests are unknown here; whatever the
    # registry shows must be complete: every visible blob is in storage under its verified digest.
    stored = {path.name for path in blob_files(server)}
    if config_status == 200:
        assert config_digest.split(":", 1)[1] in stored

    skopeo_copy(client_env, server, image.ref, target)
    seen = check_consistent(server)
    pushed = json.loads(skopeo(client_env, server, "inspect", "--raw", target).stdout)
    assert seen["crash/skopeo"]["v1"] == sha256(
        skopeo(client_env, server, "inspect", "--raw", target).stdout.encode()
    )

    # Pull it back: the config is byte-identical, each layer decompresses to the original tarball.
    out = tmp_path / "pulled"
    skopeo_copy(client_env, server, target, f"oci:{out}:v1")
    original = json.loads(image.manifest_bytes())
    config = (out / "blobs" / "sha256" / pushed["config"]["digest"].split(":", 1)[1]).read_bytes()
    assert pushed["config"]["digest"] == config_digest
    assert config == image.blob_bytes(config_digest)
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    assert len(pushed["layers"]) == len(original["layers"]) == 3
    for layer, diff_id, source in zip(pushed["layers"], diff_ids, original["layers"], strict=True):
        data = (out / "blobs" / "sha256" / layer["digest"].split(":", 1)[1]).read_bytes()
        assert sha256(data) == layer["digest"]
        assert sha256(gzip.decompress(data)) == diff_id == sha256(image.blob_bytes(source["digest"]))


def test_restart_with_pending_uploads_leaves_healthy_registry(dockyard_server: ServerFactory) -> None:
    """Several sessions in different states at the moment of the crash."""
    server = dockyard_server()
    repo = "crash/mixed"
    complete = pseudo_random("mixed-complete", 1 << 20)
    partial = pseudo_random("mixed-partial", 3 << 20)
    with server.client() as http:
        upload_blob(http, repo, complete)
        start = http.post(f"/v2/{repo}/blobs/uploads/")
        location = start.headers["location"]
        first = http.patch(
            location, content=partial[: 1 << 20], headers={"Content-Range": f"0-{(1 << 20) - 1}"}
        )
        assert first.status_code == 202
    server.kill()

    server.start()
    check_consistent(server)
    assert head_status(server, repo, sha256(complete)) == 200
    assert head_status(server, repo, sha256(partial)) == 404
    with server.client() as http:
        # The acknowledged first chunk survived the crash; the upload continues where it stood.
        status = http.get(location)
        assert status.status_code == 204
        assert status.headers["range"] == f"0-{(1 << 20) - 1}"
        rest = http.patch(
            location, content=partial[1 << 20 :], headers={"Content-Range": f"{1 << 20}-{len(partial) - 1}"}
        )
        assert rest.status_code == 202, rest.text
        done = http.put(location, params={"digest": sha256(partial)})
        assert done.status_code == 201, done.text
        assert http.get(f"/v2/{repo}/blobs/{sha256(partial)}").content == partial
    check_consistent(server)


def test_server_survives_repeated_kills_during_pushes(
    dockyard_server: ServerFactory, client_env: ClientEnv, images: dict[str, Layout]
) -> None:
    """Kill, restart, kill again at a later point of the same push: the registry stays consistent."""
    server = dockyard_server()
    image = images["multilayer"]
    target = docker_ref(server, "crash/repeat:v1")
    for delay in (0.05, 0.15):
        push = skopeo_copy_process(client_env, server, image.ref, target)
        try:
            time.sleep(delay)
            server.kill()
            push.communicate(timeout=120)
        finally:
            if push.poll() is None:
                push.kill()
                push.wait(10)
        server.start()
        check_consistent(server)
    skopeo_copy(client_env, server, image.ref, target)
    raw = skopeo(client_env, server, "inspect", "--raw", target)
    assert raw.stdout.encode() == image.manifest_bytes()
    check_consistent(server)
