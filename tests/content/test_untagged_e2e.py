"""Done when: re-pushing `:latest` twenty times with skopeo, then collecting, leaves only the current image.

Driven by a real client against a live `dockyard serve`, with `dockyard gc` run beside it (online).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import httpx

from support import DockyardFactory
from support.servers import dockyard_executable, environment_without

PASSWORD = "untagged-e2e-password"
REPO = "ci/app"
Tool = Callable[..., subprocess.CompletedProcess[str]]


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layout(directory: Path, build: int) -> set[str]:
    """An OCI layout with one image tagged `latest`, its content unique to `build`; its blob digests."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = _sha(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return digest

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        content = f"build {build}\n".encode() * 1000
        info = tarfile.TarInfo("app/build.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    # Compressed already, so skopeo sends it as it is (it would gzip a plain tar on the way).
    layer = gzip.compress(buffer.getvalue(), mtime=0)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {"Labels": {"build": str(build)}},
         "rootfs": {"type": "layers", "diff_ids": [_sha(buffer.getvalue())]}}
    ).encode()  # fmt: skip
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config),
                    "size": len(config)},
         "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(layer),
                     "size": len(layer)}]}
    ).encode()  # fmt: skip
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (directory / "index.json").write_text(
        json.dumps(
            {"schemaVersion": 2, "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(manifest),
                 "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
        )
    )  # fmt: skip
    return {_sha(config), _sha(layer)}


def _stored_blobs(storage: Path) -> set[str]:
    return {f"sha256:{path.name}" for path in (storage / "blobs" / "sha256").glob("*/*")}


def test_twenty_repushes_of_latest_then_gc_leave_only_the_current_image(
    dockyard_server: DockyardFactory, skopeo: Tool, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = dockyard_server(
        env={"DOCKYARD_ADMIN_PASSWORD": PASSWORD, "DOCKYARD_SCAN_WORKERS": "0"}, data_dir=data_dir
    )
    destination = f"docker://{server.address}/{REPO}:latest"
    every: set[str] = set()
    current: set[str] = set()
    for build in range(20):
        current = _layout(tmp_path / f"build{build}", build)
        every |= current
        skopeo(
            "copy",
            "--dest-creds",
            f"admin:{PASSWORD}",
            f"oci:{tmp_path / f'build{build}'}:latest",
            destination,
        )
    assert _stored_blobs(data_dir / "storage") == every

    gc = subprocess.run(
        [
            str(dockyard_executable()),
            "gc",
            "--data-dir",
            str(data_dir),
            "--untagged-retention",
            "0",
            "--grace",
            "0",
        ],
        env=environment_without("DOCKYARD_"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert gc.returncode == 0, gc.stderr + gc.stdout
    assert "removed 19 untagged manifests, 38 blobs" in gc.stdout
    assert _stored_blobs(data_dir / "storage") == current

    # The registry kept serving, and the current image pulls whole.
    pulled = tmp_path / "pulled"
    skopeo("copy", "--src-creds", f"admin:{PASSWORD}", destination, f"oci:{pulled}:latest")
    assert {f"sha256:{p.name}" for p in (pulled / "blobs" / "sha256").iterdir()} >= current
    with httpx.Client(base_url=server.url, auth=("admin", PASSWORD), timeout=30) as client:
        assert client.get(f"/v2/{REPO}/tags/list").json()["tags"] == ["latest"]
