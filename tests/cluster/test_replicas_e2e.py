"""Three live `dockyard serve` replicas on one database and one blob directory: a token from one is
accepted by the others, one upload goes A → B → C chunk by chunk, a key rotation reaches every replica
without a restart, and each replica shows up in the cluster's status."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import httpx
import jwt
import pytest

from support import DockyardFactory, DockyardServer
from support.servers import dockyard_executable, environment_without

ADMIN_PASSWORD = "cluster-admin-password"
REPO = "ha/upload"
CHUNKS = [b"first-" * 5000, b"second-" * 7000, b"third-" * 3000]


@pytest.fixture
def replicas(dockyard_server: DockyardFactory, tmp_path: Path) -> list[DockyardServer]:
    """Three replicas, each with its own data directory, sharing the database and the blob store."""
    shared = {
        "DOCKYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'shared' / 'dockyard.db'}",
        "DOCKYARD_STORAGE__FILESYSTEM__PATH": str(tmp_path / "shared" / "storage"),
        "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    return [
        dockyard_server(data_dir=tmp_path / f"node{i}", env=shared, args=["--workers", "1"]) for i in range(3)
    ]


def _token(server: DockyardServer, scope: str) -> str:
    response = httpx.get(
        f"{server.url}/auth/token",
        params={"service": "dockyard", "scope": scope},
        auth=("admin", ADMIN_PASSWORD),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def test_three_replicas_behave_as_one(replicas: list[DockyardServer], tmp_path: Path) -> None:
    a, b, c = replicas
    scope = f"repository:{REPO}:pull,push"
    token = _token(a, scope)
    headers = {"Authorization": f"Bearer {token}"}

    started = httpx.post(f"{a.url}/v2/{REPO}/blobs/uploads/", headers=headers, timeout=30)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    offset = 0
    for server, chunk in zip((a, b), CHUNKS[:2], strict=True):
        sent = httpx.patch(
            f"{server.url}{location}",
            content=chunk,
            headers={
                **headers,
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
            },
            timeout=30,
        )
        assert sent.status_code == 202, sent.text  # B accepts A's token and A's session
        offset += len(chunk)
        location = sent.headers["Location"]
    data = b"".join(CHUNKS)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    finished = httpx.put(
        f"{c.url}{location}",
        params={"digest": digest},
        content=CHUNKS[2],
        headers={**headers, "Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert finished.status_code == 201, finished.text
    for server in replicas:
        pulled = httpx.get(f"{server.url}/v2/{REPO}/blobs/{digest}", headers=headers, timeout=30)
        assert pulled.status_code == 200 and pulled.content == data

    old_kid = jwt.get_unverified_header(token)["kid"]
    rotated = subprocess.run(
        [str(dockyard_executable()), "admin", "rotate-key", "--data-dir", str(tmp_path / "cli")],
        env=environment_without(
            "DOCKYARD_", {"DOCKYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'shared' / 'dockyard.db'}"}
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rotated.returncode == 0, rotated.stderr
    # Every replica signs with the new key within its refresh period (10 s), without a restart.
    deadline = time.monotonic() + 30
    kids: set[str] = set()
    while time.monotonic() < deadline:
        kids = {jwt.get_unverified_header(_token(server, scope))["kid"] for server in replicas}
        if old_kid not in kids:
            break
        time.sleep(0.5)
    assert len(kids) == 1 and old_kid not in kids
    new_token = _token(b, scope)
    for server in replicas:
        for used in (token, new_token):  # the old key still verifies until its tokens expire
            listed = httpx.get(
                f"{server.url}/v2/{REPO}/tags/list", headers={"Authorization": f"Bearer {used}"}, timeout=30
            )
            assert listed.status_code in (200, 404), listed.text  # authorised (no tags yet is 404)

    status = httpx.get(f"{a.url}/api/v1/cluster", auth=("admin", ADMIN_PASSWORD), timeout=30).json()
    assert {r["address"].rsplit(":", 1)[1] for r in status["replicas"] if r["alive"]} >= {
        str(server.port) for server in replicas
    }
