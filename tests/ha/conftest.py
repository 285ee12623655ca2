"""Fixtures for the high-availability tests: one 3-node cluster from scripts/ha-cluster for the whole of
tests/ha (starting one costs 30-75 s); each test leaves it whole (every node up) for the next."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ha_support import Cluster

REPO = Path(__file__).resolve().parents[2]


def _free_block(size: int = 60) -> int:
    """A base port with `size` free ports above it (the cluster's layout)."""
    for base in range(21000, 40000, 100):
        try:
            for port in range(base, base + size):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free block of ports")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`scripts/ha-cluster up` (3 nodes) in a private directory; `down --purge` at the end."""
    directory = Path("/var/lib/dockyard-ha-tests") / tmp_path_factory.mktemp("ha").name
    script = REPO / "scripts" / "ha-cluster"
    base = ["bash", str(script), "--dir", str(directory)]
    try:
        started = subprocess.run(
            [*base, "up", "--base-port", str(_free_block())], capture_output=True, text=True, timeout=600
        )
        assert started.returncode == 0, started.stderr[-4000:]
        yield Cluster(json.loads(started.stdout), base)
    finally:
        subprocess.run([*base, "down", "--purge"], capture_output=True, timeout=120, check=False)
