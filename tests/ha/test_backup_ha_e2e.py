"""Backup of the local cluster while it serves and takes pushes (one snapshot on the Patroni leader, blobs
from the shared directory), restored into a new single-node deployment: every push acknowledged before the
backup pulls back byte for byte, and the administrator's password (its hash) came along."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from ha_support import Client, Cluster

from support import DockyardServer, PostgresServer
from support.servers import dockyard_executable, environment_without

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NAME = "ha/backup"


def _cluster_locations(cluster: Cluster) -> tuple[str, Path]:
    """The cluster's database URL (every member, the writable one chosen) and its shared blob directory, as
    scripts/ha_cluster.py gives them to its replicas."""
    directory = Path(cluster.command[cluster.command.index("--dir") + 1])
    spec = importlib.util.spec_from_file_location("ha_cluster_script", REPO / "scripts" / "ha_cluster.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script  # its dataclasses look their module up
    spec.loader.exec_module(script)
    return str(script.Cluster.load(directory).database_url()), directory / "blobs"


def _run(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(dockyard_executable()), *map(str, args)], env=env, text=True, capture_output=True, timeout=300
    )


def test_backup_of_a_serving_cluster_restores_elsewhere(
    cluster: Cluster, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    database_url, blobs = _cluster_locations(cluster)
    client = Client(cluster.url, NAME)
    acknowledged = {f"b{n}": client.push(f"b{n}", os.urandom(4096) + bytes([n])) for n in range(6)}

    stop, errors = threading.Event(), []

    def keep_pushing() -> None:
        other = Client(cluster.url, "ha/backup-during")
        try:
            number = 0
            while not stop.is_set():
                other.push(f"d{number}", os.urandom(2048))
                number += 1
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            other.close()

    pusher = threading.Thread(target=keep_pushing)
    pusher.start()
    archive = tmp_path / "cluster.tar"
    try:
        made = _run(
            "backup", "--database-url", database_url, "--data-dir", tmp_path / "cli", "--with-blobs", archive,
            env=environment_without("DOCKYARD_", {"DOCKYARD_STORAGE__FILESYSTEM__PATH": str(blobs)}),
        )  # fmt: skip
    finally:
        stop.set()
        pusher.join(60)
        client.close()
    assert made.returncode == 0, made.stderr
    assert not errors, errors

    target_url = postgres_server.create_database()
    restored = _run(
        "restore", "--database-url", target_url, "--data-dir", tmp_path / "restored", archive,
        env=environment_without("DOCKYARD_"),
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert "warning" not in restored.stderr

    server = DockyardServer(
        tmp_path / "restored", tmp_path / "serve.log", args=["--database-url", target_url]
    )
    server.start()
    again = Client(server.url, NAME)
    try:
        for tag, pushed in acknowledged.items():
            assert again.pull(tag) == pushed, f"{tag} came back different"
        again.push("after-restore", b"the restored registry takes pushes")
    finally:
        again.close()
        server.stop()
