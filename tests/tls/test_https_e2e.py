"""End to end: `certs init`, `serve` with no TLS flags, /ca over HTTPS, skopeo push and pull with the CA."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("skopeo") is None or shutil.which("curl") is None, reason="needs skopeo"),
]

DOCKYARD = Path(sys.executable).with_name("dockyard")


@dataclass(frozen=True)
class Registry:
    """A running `dockyard serve` over HTTPS on 127.0.0.1."""

    address: str
    tls_dir: Path
    env: dict[str, str]


# The bootstrapped `admin` account: pushes and pulls need credentials once access control is on.
ADMIN_PASSWORD = "tls-admin-password"
CREDS = f"admin:{ADMIN_PASSWORD}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_serving(proc: subprocess.Popen[bytes], address: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dockyard serve exited with {proc.returncode}:\n{log.read_text()}")
        ping = subprocess.run(
            ["curl", "-ks", "-o", "/dev/null", "-w", "%{http_code}", f"https://{address}/_ping"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        if ping.stdout == "200":
            return
        time.sleep(0.2)
    pytest.fail(f"dockyard serve did not answer within 60 s:\n{log.read_text()}")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """`dockyard certs init` then `dockyard serve` with no TLS flags, on a free local port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env["DOCKYARD_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    data = tmp_path / "data"
    init = subprocess.run(
        [str(DOCKYARD), "certs", "init", "--data-dir", str(data), "--host", "registry.example.test",
         "--ip", "127.0.0.1"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    address = f"127.0.0.1:{_free_port()}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(DOCKYARD), "serve", "--data-dir", str(data), "--listen", address],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        _wait_until_serving(proc, address, log)
        yield Registry(address, data / "tls", env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _write_oci_layout(root: Path) -> str:
    """A one-layer image in OCI layout at `root`, tagged v1; returns the manifest digest."""
    (root / "blobs" / "sha256").mkdir(parents=True)

    def blob(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (root / "blobs" / "sha256" / digest).write_bytes(data)
        return f"sha256:{digest}"

    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        content = b"hello from dockyard over https\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    layer = gzip.compress(tar_bytes.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {
                "type": "layers",
                "diff_ids": [f"sha256:{hashlib.sha256(tar_bytes.getvalue()).hexdigest()}"],
            },
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": blob(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": blob(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    manifest_digest = blob(manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return manifest_digest


def _skopeo(policy: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", "--policy", str(policy), *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_push_and_pull_over_https_with_the_published_ca(registry: Registry, tmp_path: Path) -> None:
    # The CA as a new client would get it: from GET /ca, before it can verify the server.
    fetched = subprocess.run(
        ["curl", "-ksS", "--fail", f"https://{registry.address}/ca"], capture_output=True, timeout=30
    )
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout == (registry.tls_dir / "ca.crt").read_bytes()
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    (cert_dir / "ca.crt").write_bytes(fetched.stdout)

    # With that CA, curl verifies the server without -k.
    verified = subprocess.run(
        ["curl", "-sS", "--fail", "-u", CREDS, "--cacert", str(cert_dir / "ca.crt"),
         f"https://{registry.address}/v2/"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    env = {**registry.env, "XDG_RUNTIME_DIR": str(tmp_path), "HOME": str(tmp_path)}
    digest = _write_oci_layout(tmp_path / "image")
    target = f"docker://{registry.address}/tls-test/hello:v1"

    # Without the CA, the client must refuse the registry's certificate.
    refused = _skopeo(policy, env, "copy", "--dest-creds", CREDS, f"oci:{tmp_path / 'image'}:v1", target)
    assert refused.returncode != 0
    assert "x509: certificate signed by unknown authority" in refused.stderr

    pushed = _skopeo(
        policy, env, "copy", "--dest-creds", CREDS, "--dest-cert-dir", str(cert_dir),
        f"oci:{tmp_path / 'image'}:v1", target,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr

    refused_pull = _skopeo(policy, env, "inspect", "--creds", CREDS, "--raw", target)
    assert refused_pull.returncode != 0
    assert "x509: certificate signed by unknown authority" in refused_pull.stderr

    pulled = _skopeo(
        policy, env, "copy", "--src-creds", CREDS, "--src-cert-dir", str(cert_dir), target,
        f"oci:{tmp_path / 'pulled'}:v1",
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    index = json.loads((tmp_path / "pulled" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [digest]
    layer_files = {p.name for p in (tmp_path / "pulled" / "blobs" / "sha256").iterdir()}
    assert layer_files == {p.name for p in (tmp_path / "image" / "blobs" / "sha256").iterdir()}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tls-cert", "{tls}/server.crt"], "tls_cert (--tls-cert) was given without tls_key"),
        (
            ["--tls-cert", "{tls}/server.crt", "--tls-key", "{tls}/ca.key"],
            "/ca.key does not belong to certificate",
        ),
        (["--external-url", "https://elsewhere.example.test"], "not for elsewhere.example.test"),
    ],
)
def test_serve_refuses_bad_tls_before_listening(tmp_path: Path, extra: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    data = tmp_path / "data"
    init = subprocess.run(
        [str(DOCKYARD), "certs", "init", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    args = [a.format(tls=data / "tls") for a in extra]
    proc = subprocess.run(
        [str(DOCKYARD), "serve", "--data-dir", str(data), "--listen", f"127.0.0.1:{_free_port()}", *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Uvicorn running" not in proc.stderr


def test_serve_warns_before_expiry(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    data = tmp_path / "data"
    init = subprocess.run(
        [str(DOCKYARD), "certs", "init", "--data-dir", str(data), "--days", "10"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    log = tmp_path / "serve.log"
    address = f"127.0.0.1:{_free_port()}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(DOCKYARD), "serve", "--data-dir", str(data), "--listen", address],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        _wait_until_serving(proc, address, log)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert "WARNING dockyard: TLS certificate" in log.read_text()
    assert "expires in 9 days" in log.read_text()


def test_token_authentication_over_https(registry: Registry) -> None:
    """The Docker token flow end to end over TLS: challenge, token from the realm, bearer access."""
    import ssl

    import httpx

    trust = ssl.create_default_context(cafile=str(registry.tls_dir / "ca.crt"))
    base = f"https://{registry.address}"
    with httpx.Client(verify=trust, timeout=30) as client:
        challenge = client.get(f"{base}/v2/")
        assert challenge.status_code == 401
        header = challenge.headers["www-authenticate"]
        assert header.startswith("Bearer ")
        params = dict(part.split("=", 1) for part in header[len("Bearer ") :].split(","))
        realm = params["realm"].strip('"')
        assert realm == f"{base}/auth/token", header

        user, password = CREDS.split(":", 1)
        issued = client.get(
            realm,
            params={"service": params["service"].strip('"'), "scope": "repository:tls-test/token:pull,push"},
            auth=(user, password),
        )
        assert issued.status_code == 200, issued.text
        token = issued.json()["token"]
        assert client.get(f"{base}/v2/", headers={"Authorization": f"Bearer {token}"}).status_code == 200

        refused = client.get(realm, params={"service": params["service"].strip('"')}, auth=(user, "wrong"))
        assert refused.status_code == 401
