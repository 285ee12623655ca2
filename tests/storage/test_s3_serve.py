"""`dockyard serve` with blobs on S3 (moto's server mode), driven by real clients: skopeo pushes through
one replica and pulls through another (blob GETs answered by a 307 to a presigned URL, which skopeo
follows), one upload's chunks go to two replicas, and `dockyard gc` collects in the bucket."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from s3_server import ACCESS_KEY, SECRET_KEY, MotoServer

from dockyard.app import build_services
from dockyard.cache.grants import GRANT_PARAMETER, issue_grant
from dockyard.config import load_settings
from support import BuiltImages, DockyardFactory, DockyardServer
from support.servers import dockyard_executable, environment_without

pytestmark = pytest.mark.e2e

PASSWORD = "s3-e2e-admin-password"
Tool = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def bucket(moto_server: MotoServer) -> str:
    """An empty bucket."""
    return moto_server.new_bucket()


@pytest.fixture
def config_file(tmp_path: Path, moto_server: MotoServer, bucket: str) -> Path:
    """Settings for replicas sharing one database and the bucket, redirects on; the secret from a file."""
    secret = tmp_path / "s3-secret"
    secret.write_text(SECRET_KEY)
    secret.chmod(0o600)
    path = tmp_path / "dockyard.toml"
    path.write_text(
        f'database_url = "sqlite:///{tmp_path / "shared.db"}"\n'
        "scan_workers = 0\n"
        "[storage]\n"
        'driver = "s3"\n'
        "[storage.s3]\n"
        f'bucket = "{bucket}"\n'
        f'endpoint_url = "{moto_server.url}"\n'
        'prefix = "registry"\n'
        f'access_key = "{ACCESS_KEY}"\n'
        'secret_key_file = "s3-secret"\n'
        "redirect = true\n"
        "redirect_expiry_seconds = 120\n"
    )
    return path


@pytest.fixture
def replicas(dockyard_server: DockyardFactory, config_file: Path) -> list[DockyardServer]:
    """Two `dockyard serve` processes on the same settings (each its own data directory)."""
    env = {"DOCKYARD_ADMIN_PASSWORD": PASSWORD}
    return [dockyard_server(args=["--config", str(config_file)], env=env) for _ in range(2)]


def _bucket_keys(moto_server: MotoServer, bucket: str, prefix: str) -> set[str]:
    pages = moto_server.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def _blob_keys(moto_server: MotoServer, bucket: str) -> set[str]:
    return {
        "sha256:" + key.rsplit("/", 1)[1]
        for key in _bucket_keys(moto_server, bucket, "registry/blobs/sha256/")
    }


def test_push_on_one_replica_pull_from_the_other_through_redirects(
    replicas: list[DockyardServer], skopeo: Tool, images: BuiltImages, tmp_path: Path,
    moto_server: MotoServer, bucket: str,
) -> None:  # fmt: skip
    a, b = replicas
    creds = f"admin:{PASSWORD}"
    skopeo("copy", "--dest-creds", creds, images.multilayer.ref, f"docker://{a.address}/team/app:v1")
    index = json.loads((images.multilayer.layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads(images.multilayer.blob(manifest_digest))
    layers = {layer["digest"] for layer in manifest["layers"]} | {manifest["config"]["digest"]}
    # The bytes are in the bucket, under the prefix, by digest; no upload is left over.
    assert layers <= _blob_keys(moto_server, bucket)
    assert _bucket_keys(moto_server, bucket, "registry/uploads/") == set()

    pulled = tmp_path / "pulled"
    skopeo("copy", "--src-creds", creds, f"docker://{b.address}/team/app:v1", f"oci:{pulled}:v1")
    for digest in layers:
        hexdigest = digest.split(":", 1)[1]
        assert (pulled / "blobs" / "sha256" / hexdigest).read_bytes() == images.multilayer.blob(digest)

    # Each blob GET is a redirect to a presigned URL on the bucket; HEAD and ranges are answered right.
    layer = sorted(layers)[0]
    data = images.multilayer.blob(layer)
    with httpx.Client(base_url=b.url, auth=("admin", PASSWORD), timeout=30) as client:
        response = client.get(f"/v2/team/app/blobs/{layer}")
        assert response.status_code == 307
        location = response.headers["location"]
        assert location.startswith(moto_server.url) and "X-Amz-Signature=" in location
        assert response.headers["docker-content-digest"] == layer
        assert response.headers["cache-control"] == "no-store"
        assert httpx.get(location, timeout=30).content == data
        head = client.head(f"/v2/team/app/blobs/{layer}")
        assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)
        ranged = httpx.get(location, headers={"Range": "bytes=1-10"}, timeout=30)
        assert ranged.status_code == 206 and ranged.content == data[1:11]
        # Only through a repository the blob is linked into: elsewhere a 404, never a redirect.
        assert client.get(f"/v2/team/other/blobs/{layer}").status_code == 404


def test_a_cache_fetch_is_streamed_not_redirected(
    replicas: list[DockyardServer], skopeo: Tool, images: BuiltImages, tmp_path: Path,
    config_file: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Cache nodes do not follow redirects: a fetch by grant gets the bytes themselves."""
    a, _ = replicas
    skopeo("copy", "--dest-creds", f"admin:{PASSWORD}", images.single.ref, f"docker://{a.address}/team/c:v1")
    index = json.loads((images.single.layout / "index.json").read_text())
    layer = json.loads(images.single.blob(index["manifests"][0]["digest"]))["layers"][0]["digest"]
    monkeypatch.setenv("DOCKYARD_CONFIG", str(config_file))
    services = build_services(load_settings(data_dir=tmp_path / "grants"))
    try:
        grant = issue_grant(services.auth.keys.current, "dockyard", "admin", "team/c", layer, 60)
    finally:
        services.db.close()
    fetched = httpx.get(f"{a.url}/v2/team/c/blobs/{layer}", params={GRANT_PARAMETER: grant}, timeout=30)
    assert fetched.status_code == 200
    assert fetched.content == images.single.blob(layer)


def test_one_upload_continued_on_another_replica(
    replicas: list[DockyardServer], moto_server: MotoServer, bucket: str
) -> None:
    a, b = replicas
    # Larger than a part (16 MiB by default), so parts as well as tails cross replicas.
    chunks = [os.urandom(9 << 20), os.urandom(10 << 20), os.urandom(123_457)]
    data = b"".join(chunks)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    auth = ("admin", PASSWORD)
    with httpx.Client(auth=auth, timeout=120) as client:
        started = client.post(f"{a.url}/v2/team/chunked/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        offset = 0
        for index, chunk in enumerate(chunks):
            server = (a, b)[index % 2]
            url = location if location.startswith("http") else server.url + location
            url = url.replace(a.url, server.url).replace(b.url, server.url)
            patched = client.patch(
                url,
                content=chunk,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                },
            )
            assert patched.status_code == 202, patched.text
            offset += len(chunk)
            assert patched.headers["range"] == f"0-{offset - 1}"
            location = patched.headers["location"]
        url = (location if location.startswith("http") else a.url + location).replace(b.url, a.url)
        done = client.put(url, params={"digest": digest})
        assert done.status_code == 201, done.text
        pulled = client.get(f"{b.url}/v2/team/chunked/blobs/{digest}", follow_redirects=True)
        assert pulled.status_code == 200
        assert hashlib.sha256(pulled.content).hexdigest() == digest.split(":", 1)[1]
    assert digest in _blob_keys(moto_server, bucket)
    assert _bucket_keys(moto_server, bucket, "registry/uploads/") == set()
    assert moto_server.client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_gc_collects_in_the_bucket(
    replicas: list[DockyardServer], skopeo: Tool, images: BuiltImages, tmp_path: Path,
    config_file: Path, moto_server: MotoServer, bucket: str,
) -> None:  # fmt: skip
    a, _ = replicas
    creds = f"admin:{PASSWORD}"
    target = f"docker://{a.address}/team/gc:latest"
    skopeo("copy", "--dest-creds", creds, images.single.ref, target)
    first = _blob_keys(moto_server, bucket)
    skopeo("copy", "--dest-creds", creds, images.multilayer.ref, target)
    both = _blob_keys(moto_server, bucket)
    # An object nobody recorded (a crash between the copy and the commit leaves one).
    orphan = "sha256:" + hashlib.sha256(b"orphan").hexdigest()
    moto_server.client.put_object(
        Bucket=bucket, Key=f"registry/blobs/sha256/{orphan[7:9]}/{orphan[7:]}", Body=b"orphan"
    )
    gc = subprocess.run(
        [str(dockyard_executable()), "gc", "--config", str(config_file), "--data-dir", str(tmp_path / "gc"),
         "--untagged-retention", "0", "--grace", "0"],
        env=environment_without("DOCKYARD_"), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert gc.returncode == 0, gc.stderr + gc.stdout
    left = _blob_keys(moto_server, bucket)
    assert orphan not in left
    assert left < both
    assert first - left, "the replaced image's own blobs are collected"
    pulled = tmp_path / "pulled"
    skopeo("copy", "--src-creds", creds, target, f"oci:{pulled}:latest")
    assert (pulled / "index.json").exists()
