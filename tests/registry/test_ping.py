"""/_ping: 200 when healthy; 503 naming the database when it really breaks (no mocks)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from registry_support import error_codes, push_blob, running, services_of
from starlette.testclient import TestClient

from dockyard.config import load_settings
from support import PostgresServer


def test_ping_healthy(app_client: TestClient) -> None:
    response = app_client.get("/_ping")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "writable": True}
    assert app_client.head("/_ping").status_code == 200


def test_sqlite_directory_made_unusable(tmp_path: Path) -> None:
    db_dir = tmp_path / "db"
    settings = load_settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{db_dir / 'dockyard.db'}")
    with running(settings) as client:
        push_blob(client, "ping/test", b"before")
        assert client.get("/_ping").status_code == 200
        # Close the pooled connections, then put a plain file where the database's directory was:
        # nothing can open the database any more (root ignores permissions, so chmod would not do).
        services_of(client).db.engine.dispose()
        moved = tmp_path / "db-moved"
        db_dir.rename(moved)
        db_dir.write_text("not a directory")
        try:
            response = client.get("/_ping")
            assert response.status_code == 503
            body = response.json()
            assert body["status"] == "unhealthy"
            assert set(body["problems"]) == {"database"}
            pulled = client.get("/v2/ping/test/tags/list")
            assert pulled.status_code == 503
            assert error_codes(pulled) == ["UNAVAILABLE"]
            assert "Traceback" not in pulled.text
        finally:
            db_dir.unlink()
            moved.rename(db_dir)
        # Healthy again as soon as the database is back.
        assert client.get("/_ping").status_code == 200
        assert (
            client.head(f"/v2/ping/test/blobs/{push_blob(client, 'ping/test', b'before')}").status_code == 200
        )


@pytest.mark.postgres
def test_postgres_database_gone(postgres_server: PostgresServer, tmp_path: Path) -> None:
    url = postgres_server.create_database()
    settings = load_settings(data_dir=tmp_path / "data", database_url=url)
    with running(settings) as client:
        push_blob(client, "ping/test", b"before")
        assert client.get("/_ping").status_code == 200
        # The server drops the database under the running app, disconnecting its pooled connections.
        with psycopg.connect(postgres_server.admin_conninfo, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {url.rsplit('/', 1)[1]} WITH (FORCE)".encode())
        response = client.get("/_ping")
        assert response.status_code == 503
        assert set(response.json()["problems"]) == {"database"}
        pushed = client.post("/v2/ping/test/blobs/uploads/")
        assert pushed.status_code == 503
        assert error_codes(pushed) == ["UNAVAILABLE"]


def test_concurrent_pings_are_all_healthy(app_client: TestClient) -> None:
    """Health probes arrive together (load balancer, orchestrator): none may trip over another's check."""
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: app_client.get("/_ping").status_code, range(80)))
    assert statuses == [200] * 80
