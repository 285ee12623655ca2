"""Replicas of the local cluster (scripts/ha-cluster) act as one: an upload begun on one replica goes on on
another and ends on a third, each chunk sent straight to a replica; a token from one replica is accepted by
the others; a key rotation (`dockyard admin rotate-key`) is seen by every replica without a restart."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from ha_support import ADMIN, Cluster, sha256, wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def _token(base: str, scope: str) -> str:
    answer = httpx.get(
        f"{base}/auth/token", params={"service": "dockyard", "scope": scope}, auth=ADMIN, timeout=15
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def _kid(token: str) -> str:
    header = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def _accepted(base: str, token: str) -> bool:
    answer = httpx.get(f"{base}/v2/", headers={"Authorization": f"Bearer {token}"}, timeout=15)
    return answer.status_code == 200


def test_an_upload_begun_on_a_goes_on_on_b_and_ends_on_c(cluster: Cluster) -> None:
    cluster.wait_whole()
    a, b, c = (cluster.replica_url(i) for i in range(3))
    token = _token(a, "repository:ha/chunks:pull,push")
    headers = {"Authorization": f"Bearer {token}"}
    chunks = [os.urandom(300_000), os.urandom(200_000), os.urandom(100_000)]
    data = b"".join(chunks)
    digest = sha256(data)
    begun = httpx.post(f"{a}/v2/ha/chunks/blobs/uploads/", headers=headers, timeout=15)
    assert begun.status_code == 202, begun.text
    location = begun.headers["Location"]
    path = httpx.URL(location).raw_path.decode() if location.startswith("http") else location
    offset = 0
    for replica, chunk in ((a, chunks[0]), (b, chunks[1])):
        answer = httpx.patch(
            f"{replica}{path}",
            content=chunk,
            headers={
                **headers,
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
            },
            timeout=30,
        )
        assert answer.status_code == 202, (replica, answer.text)
        assert answer.headers["Range"] == f"0-{offset + len(chunk) - 1}"
        offset += len(chunk)
        path = answer.headers["Location"]
        path = httpx.URL(path).raw_path.decode() if path.startswith("http") else path
    status = httpx.get(f"{c}{path}", headers=headers, timeout=15)
    assert status.status_code == 204 and status.headers["Range"] == f"0-{offset - 1}"
    separator = "&" if "?" in path else "?"
    finished = httpx.put(
        f"{c}{path}{separator}digest={digest}",
        content=chunks[2],
        headers={**headers, "Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert finished.status_code == 201, finished.text
    assert finished.headers["Docker-Content-Digest"] == digest
    for replica in (a, b, c, cluster.url):
        blob = httpx.get(f"{replica}/v2/ha/chunks/blobs/{digest}", headers=headers, timeout=30)
        assert blob.status_code == 200 and hashlib.sha256(blob.content).hexdigest() == digest[7:]


def test_tokens_and_a_key_rotation_are_shared_by_every_replica(cluster: Cluster, tmp_path: Path) -> None:
    cluster.wait_whole()
    replicas = [cluster.replica_url(i) for i in range(3)]
    scope = "repository:ha/tokens:pull"
    before = _token(replicas[0], scope)
    assert all(_accepted(replica, before) for replica in replicas)
    assert {_kid(_token(replica, scope)) for replica in replicas} == {_kid(before)}
    rotated = subprocess.run(
        [str(REPO / ".venv" / "bin" / "dockyard"), "admin", "rotate-key",
         "--database-url", cluster.database_url(), "--data-dir", str(tmp_path / "cli")],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")},
    )  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr[-3000:]
    new_kid = rotated.stdout.split()[-1]
    assert new_kid != _kid(before)
    # Every replica signs with the new key soon (it re-reads the key set every few seconds)...
    for replica in replicas:
        wait_until(f"{replica} signs with {new_kid}", lambda r=replica: _kid(_token(r, scope)) == new_kid, 30)
    # ...every replica accepts what another signed with it, and the old key still verifies its tokens.
    fresh = _token(replicas[2], scope)
    assert all(_accepted(replica, fresh) for replica in replicas)
    assert all(_accepted(replica, before) for replica in replicas)
    # A forged token (the signature of another payload) is refused everywhere.
    header, _, signature = fresh.split(".")
    forged = ".".join([header, before.split(".")[1], signature])
    assert not any(_accepted(replica, forged) for replica in replicas)
