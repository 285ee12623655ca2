"""With 2 of 3 nodes of the local cluster down (no quorum): every image pushed before still pulls through
HAProxy (skopeo, and byte for byte), logins and tokens still work, a push fails fast with the 503
"read-only: the database has no quorum" in OCI JSON, and the cluster status says the quorum is lost. When
the nodes return, writes resume by themselves within 60 s, and nothing acknowledged is lost."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest
from ha_support import ADMIN, Client, Cluster, wait_until

from support.images import BuiltImages
from support.tools import ContainerTools

pytestmark = pytest.mark.e2e

CREDS = f"{ADMIN[0]}:{ADMIN[1]}"


def _host(cluster: Cluster) -> str:
    return cluster.url.removeprefix("http://")


def _skopeo_pull(tools: ContainerTools, cluster: Cluster, reference: str, target: Path) -> str:
    """Copy an image out of the cluster through HAProxy; the digest of the manifest it got."""
    tools.skopeo(
        "copy", "--src-creds", CREDS, f"docker://{_host(cluster)}/{reference}", f"oci:{target}:pulled",
        timeout=120,
    )  # fmt: skip
    index = json.loads((target / "index.json").read_text())
    return str(index["manifests"][0]["digest"])


def _cluster_view(base: str) -> dict[str, object]:
    answer = httpx.get(f"{base}/api/v1/cluster", auth=ADMIN, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_without_quorum_pulls_and_logins_work_pushes_say_why_and_writes_come_back(
    cluster: Cluster, images: BuiltImages, container_tools: ContainerTools, tmp_path: Path
) -> None:
    tools = container_tools
    cluster.wait_whole()
    client = Client(cluster.url, "ha/quorum")
    pushed = {f"t{n}": client.push(f"t{n}", os.urandom(4096) + bytes([n])) for n in range(5)}
    tools.skopeo(
        "copy", "--dest-creds", CREDS, images.multilayer.ref, f"docker://{_host(cluster)}/ha/skopeo:v1",
        timeout=120,
    )  # fmt: skip

    # The survivor may be the asynchronous standby: let it replay what was acknowledged before the kills.
    def caught_up() -> bool:
        members = _cluster_view(cluster.url)["database_cluster"]["members"]  # type: ignore[index]
        return all(not member.get("lag_bytes") for member in members)

    wait_until("every standby caught up", caught_up, 60)
    view = _cluster_view(cluster.url)["database_cluster"]
    assert isinstance(view, dict) and view["managed"] is True and view["quorum"] is True
    assert {m["role"] for m in view["members"]} >= {"leader"} and len(view["members"]) == 3
    leader = cluster.leader()
    down = [leader, (leader + 1) % 3]
    try:
        for index in down:
            cluster.node("kill-node", index)
        # HAProxy drops the dead replicas within a few seconds (its checks, or the first refused connection);
        # then every pull goes to the survivor, on new connections as on this client's kept one.
        wait_until("a pull through HAProxy", lambda: client.pull("t0") == pushed["t0"], 60)
        wait_until(
            "fresh connections through HAProxy",
            lambda: all(httpx.get(f"{cluster.url}/_ping", timeout=10).status_code == 200 for _ in range(6)),
            60,
        )

        # Pulls: every image, byte for byte, and skopeo through HAProxy.
        for tag, image in pushed.items():
            assert client.pull(tag) == image, f"{tag} came back different"
        assert _skopeo_pull(tools, cluster, "ha/skopeo:v1", tmp_path / "pulled") == images.multilayer.digest

        # Logins: a token with the password, docker login's kind (no refresh token can be stored now).
        login = httpx.get(
            f"{cluster.url}/auth/token",
            params={
                "service": "dockyard",
                "account": "admin",
                "client_id": "docker",
                "offline_token": "true",
                "scope": "repository:ha/quorum:pull,push",
            },
            auth=ADMIN,
            timeout=30,
        )
        assert login.status_code == 200, login.text
        assert "token" in login.json() and "refresh_token" not in login.json()
        tools.skopeo("inspect", "--creds", CREDS, f"docker://{_host(cluster)}/ha/quorum:t1", timeout=60)

        # A push fails fast, saying why, in the protocol's format.
        started = time.monotonic()
        refused = httpx.post(
            f"{cluster.url}/v2/ha/quorum/blobs/uploads/",
            headers={"Authorization": f"Bearer {login.json()['token']}"},
            timeout=30,
        )
        assert time.monotonic() - started < 10
        assert refused.status_code == 503, refused.text
        assert refused.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        error = refused.json()["errors"][0]
        assert error["code"] == "UNAVAILABLE" and error["message"] == "read-only: the database has no quorum"
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="503"):
            client.push("refused", b"never")
        assert time.monotonic() - started < 10

        # The status says so: not writable, no leader, the quorum lost, two members unreachable.
        status = _cluster_view(cluster.url)
        database = status["database_cluster"]
        assert isinstance(database, dict)
        assert status["writable"] is False and database["leader"] is None and database["quorum"] is False
        assert len(database["unreachable"]) == 2
    finally:
        for index in down:
            cluster.node("start-node", index)

    # Writes resume by themselves.
    resumed = wait_until("a push after the nodes returned", lambda: bool(client.push("after", b"back")), 60)
    print(f"writes resumed {resumed:.1f} s after the nodes were started again")
    cluster.wait_whole()
    for tag, image in pushed.items():
        assert client.pull(tag) == image, f"{tag} was lost"
    assert _skopeo_pull(tools, cluster, "ha/skopeo:v1", tmp_path / "again") == images.multilayer.digest
    view = _cluster_view(cluster.url)["database_cluster"]
    assert isinstance(view, dict) and view["quorum"] is True and view["leader"] is not None
    client.close()
