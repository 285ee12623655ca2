"""Cluster identity and status: replicas register and beat, the status shows who is up and whether the
database takes writes, for system administrators only (API and CLI); /_ping says whether writes work."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from starlette.testclient import TestClient

from dockyard import __version__
from dockyard.app import create_app
from dockyard.auth.errors import Forbidden
from dockyard.auth.identity import Identity
from dockyard.cli import main
from dockyard.cluster import replicas as replicas_module
from dockyard.cluster.replicas import ReplicaRegistry
from dockyard.config import Settings, load_settings
from dockyard.db.engine import Database
from support import PostgresServer

ADMIN = Identity(user_id=0, name="test", is_admin=True)
ADMIN_PASSWORD = "admin-password-1"


@pytest.fixture(autouse=True)
def _cheap(cheap_hashes: None) -> None:
    """Password hashes need not be slow."""


@pytest.fixture
def url(migrated_url: str) -> str:
    """A freshly migrated database (SQLite and PostgreSQL)."""
    return migrated_url


def _registry(db: Database, tmp_path: Path, replica: str, port: int) -> ReplicaRegistry:
    settings = load_settings(data_dir=tmp_path / replica, replica_id=replica, listen=f"10.0.0.{port}:5000")
    return ReplicaRegistry(db, settings)


def test_replicas_register_beat_and_go_silent(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = _registry(migrated_db, tmp_path, "node-a", 1), _registry(migrated_db, tmp_path, "node-b", 2)
    a.beat()
    b.beat()
    a.beat()  # again: one row per replica
    found = a.status(ADMIN)
    assert found.replica == "node-a" and found.writable is True
    assert [(r.id, r.address, r.version, r.alive) for r in found.replicas] == [
        ("node-a", "10.0.0.1:5000", __version__, True),
        ("node-b", "10.0.0.2:5000", __version__, True),
    ]
    later = time.time() + 4 * replicas_module.HEARTBEAT_SECONDS
    monkeypatch.setattr(replicas_module.time, "time", lambda: later)
    a.beat()  # b has stopped beating: its node died
    assert {r.id: r.alive for r in b.status(ADMIN).replicas} == {"node-a": True, "node-b": False}


def test_the_status_is_for_system_administrators(migrated_db: Database, tmp_path: Path) -> None:
    registry = _registry(migrated_db, tmp_path, "node-a", 1)
    for someone in (Identity(user_id=5, name="alice"), Identity(user_id=None, name=None)):
        with pytest.raises(Forbidden):
            registry.status(someone)


@pytest.mark.postgres
def test_a_read_only_database_is_reported(postgres_server: PostgresServer, tmp_path: Path) -> None:
    url = postgres_server.create_database()
    db = Database(url)
    db.migrate()
    try:
        registry = _registry(db, tmp_path, "node-a", 1)
        assert registry.writable() is True
        # What a standby (or a primary without its synchronous quorum, set read-only) looks like.
        with db.read() as conn:
            name = conn.execute(text("SELECT current_database()")).scalar_one()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
        db.engine.dispose()
        assert registry.writable() is False
    finally:
        db.close()


def test_unreachable_database_means_not_writable(tmp_path: Path) -> None:
    db = Database("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        assert _registry(db, tmp_path, "node-a", 1).writable() is False
    finally:
        db.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """An app with a system administrator and one ordinary user, `alice`."""
    settings = Settings(data_dir=tmp_path / "data", admin_password=ADMIN_PASSWORD, replica_id="node-a")
    app = create_app(settings)
    app.state.services.auth.accounts.create_user(None, "alice", "alice-password-1")
    with TestClient(app) as running:
        yield running


def test_api_cluster_status(client: TestClient) -> None:
    # The lifespan started this replica's heartbeat; its first beat lands soon after start.
    deadline = time.monotonic() + 20
    while True:
        body = client.get("/api/v1/cluster", auth=("admin", ADMIN_PASSWORD)).json()
        if body["replicas"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert body["replica"] == "node-a" and body["writable"] is True and body["database"] == "sqlite"
    assert [(r["id"], r["alive"], r["version"]) for r in body["replicas"]] == [("node-a", True, __version__)]
    assert body["database_cluster"] == {
        "managed": False,
        "members": [],
        "leader": None,
        "quorum": None,
        "unreachable": [],
        "note": "not managed by Patroni",
    }
    denied = client.get("/api/v1/cluster", auth=("alice", "alice-password-1"))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "DENIED"
    anonymous = client.get("/api/v1/cluster")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "UNAUTHORIZED"


def test_ping_says_whether_writes_work(client: TestClient) -> None:
    assert client.get("/_ping").json() == {"status": "ok", "writable": True}


def test_cli_cluster_status(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = load_settings(data_dir=data, replica_id="node-a")
    db = Database(settings.effective_database_url)
    db.migrate()
    ReplicaRegistry(db, settings).beat()
    db.close()
    runner = CliRunner()
    table = runner.invoke(main, ["cluster", "status", "--data-dir", str(data)])
    assert table.exit_code == 0, table.output
    assert "database: sqlite, writable" in table.output and "1 up of 1" in table.output
    assert "node-a" in table.output
    assert "database members: not managed by Patroni" in table.output
    as_json = runner.invoke(main, ["cluster", "status", "--data-dir", str(data), "--json"])
    assert as_json.exit_code == 0, as_json.output
    found = json.loads(as_json.output)
    assert [r["id"] for r in found["replicas"]] == ["node-a"] and found["writable"] is True
