"""High availability with the local cluster (scripts/ha-cluster): the node holding the database leader is
killed whole while a client pushes; every push it saw succeed is there afterwards, byte for byte, and writes
resume within 30 s."""

from __future__ import annotations

import os
import time

import pytest
from ha_support import Client, Cluster

pytestmark = pytest.mark.e2e

REPO = "ha/stream"


def test_leader_killed_during_pushes_loses_nothing_acknowledged(cluster: Cluster) -> None:
    client = Client(cluster.url, REPO)
    acknowledged: dict[str, tuple[str, dict[str, bytes]]] = {}
    leader = cluster.leader()
    killed_at: float | None = None
    failed_since_kill = False
    resumed_after: float | None = None
    after_resume = 0
    started = time.monotonic()
    try:
        for number in range(1, 100_000):
            if time.monotonic() - started > 120 or after_resume >= 10:
                break
            tag = f"t{number}"
            try:
                acknowledged[tag] = client.push(tag, os.urandom(2048) + tag.encode())
            except Exception:
                failed_since_kill = killed_at is not None
                time.sleep(0.2)
                continue
            if killed_at is not None:
                if resumed_after is None:
                    resumed_after = time.monotonic() - killed_at if failed_since_kill else 0.0
                after_resume += 1
            elif len(acknowledged) >= 10:
                cluster.node("kill-node", leader)
                killed_at = time.monotonic()
        assert killed_at is not None, "the leader was killed"
        assert resumed_after is not None and resumed_after < 30, f"writes resumed after {resumed_after} s"
        assert cluster.leader() != leader
        for tag, (digest, blobs) in acknowledged.items():
            assert client.pull(tag) == (digest, blobs), f"{tag} came back different"
    finally:
        client.close()
        cluster.node("start-node", leader)
        cluster.wait_whole()
