"""A write transaction cut by a failover (its backend terminated, the member demoted, a serialization
conflict) is run again when it is idempotent, within a bounded time; otherwise the client gets a clear 503,
and never a half-done push. On a real PostgreSQL: backends are killed with pg_terminate_backend."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from starlette.testclient import TestClient

from dockyard.app import create_app
from dockyard.config import Settings
from dockyard.db import engine as engine_module
from dockyard.db.engine import Database, TransactionCut
from support import PostgresServer

pytestmark = pytest.mark.postgres

_OCI = "application/vnd.oci.image.manifest.v1+json"


def _kill(postgres_server: PostgresServer, pid: int) -> None:
    """Terminate one backend from another session, as a failing-over server does to its clients."""
    with psycopg.connect(postgres_server.admin_conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _backend_pid(conn: Connection) -> int:
    return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


@pytest.fixture
def db(postgres_server: PostgresServer) -> Iterator[Database]:
    """A database with one table `facts` holding unique values."""
    found = Database(postgres_server.create_database())
    with found.write() as conn:
        conn.execute(text("CREATE TABLE facts (v text PRIMARY KEY)"))
    yield found
    found.close()


def _rows(db: Database) -> list[str]:
    with db.read() as conn:
        return list(conn.execute(text("SELECT v FROM facts ORDER BY v")).scalars())


def _cut_by(how: str, postgres_server: PostgresServer) -> Callable[[Connection], None]:
    """Something that cuts the transaction on `conn` the way a failover (or a conflict) does."""

    def terminated(conn: Connection) -> None:
        _kill(postgres_server, _backend_pid(conn))
        conn.execute(text("SELECT 1"))

    def demoted(conn: Connection) -> None:
        # What a write on a member that was demoted to a standby meets: read_only_sql_transaction.
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.execute(text("INSERT INTO facts VALUES ('on a standby')"))

    def conflict(conn: Connection) -> None:
        conn.exec_driver_sql("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")

    return {"terminated": terminated, "demoted": demoted, "conflict": conflict}[how]


@pytest.mark.parametrize("how", ["terminated", "demoted", "conflict"])
def test_a_cut_transaction_is_run_again_and_counts_once(
    db: Database, postgres_server: PostgresServer, how: str
) -> None:
    attempts = []
    cut = _cut_by(how, postgres_server)

    def action(conn: Connection) -> str:
        attempts.append(_backend_pid(conn))
        conn.execute(text("INSERT INTO facts VALUES ('pushed')"))
        if len(attempts) == 1:
            cut(conn)
        return "done"

    assert db.write_retrying(action) == "done"
    assert len(attempts) == 2
    # The first attempt's insert died with it: one row, not two (the key is unique, and nothing half-done).
    assert _rows(db) == ["pushed"]
    if how != "conflict":
        # The cut connection was dropped, not handed out again.
        assert attempts[0] != attempts[1]


def test_a_cut_that_goes_on_gives_up_within_the_bound(
    db: Database, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "RETRY_SECONDS", 0.5)
    attempts = []

    def action(conn: Connection) -> None:
        attempts.append(1)
        conn.execute(text("INSERT INTO facts VALUES ('never')"))
        _cut_by("terminated", postgres_server)(conn)

    with pytest.raises(TransactionCut, match="failed over"):
        db.write_retrying(action)
    assert 2 <= len(attempts) <= 6
    assert _rows(db) == []


def test_other_errors_are_not_retried(db: Database) -> None:
    with db.write() as conn:
        conn.execute(text("INSERT INTO facts VALUES ('taken')"))
    attempts = []

    def action(conn: Connection) -> None:
        attempts.append(1)
        conn.execute(text("INSERT INTO facts VALUES ('taken')"))

    with pytest.raises(IntegrityError):
        db.write_retrying(action)
    assert attempts == [1]


def test_a_plain_write_cut_says_so_and_the_next_one_works(
    db: Database, postgres_server: PostgresServer
) -> None:
    with pytest.raises(TransactionCut), db.write() as conn:
        conn.execute(text("INSERT INTO facts VALUES ('lost')"))
        _cut_by("terminated", postgres_server)(conn)
    with db.write() as conn:
        conn.execute(text("INSERT INTO facts VALUES ('kept')"))
    assert _rows(db) == ["kept"]


# Through the registry: a manifest PUT whose transaction is cut.


def _sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class _Registry:
    """An app on PostgreSQL with one pushed config and layer, and a switch that kills the backend of the
    transaction that inserts a manifest (or deletes a tag)."""

    def __init__(self, client: TestClient, db: Database, postgres_server: PostgresServer) -> None:
        self.client = client
        self.kills_left = 0
        self.statement = "INSERT INTO manifests"
        self.killed = 0
        config, layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(256)
        for data in (config, layer):
            answer = client.post("/v2/ha/retry/blobs/uploads/", params={"digest": _sha(data)}, content=data)
            assert answer.status_code == 201, answer.text
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": _OCI,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _sha(config),
                           "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _sha(layer),
                            "size": len(layer)}],
            }
        ).encode()  # fmt: skip

        @event.listens_for(db.engine, "before_cursor_execute")
        def _before(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
            if self.kills_left and statement.lstrip().upper().startswith(self.statement.upper()):
                self.kills_left -= 1
                self.killed += 1
                _kill(postgres_server, conn.connection.driver_connection.info.backend_pid)  # type: ignore[union-attr]

    def put(self, tag: str) -> Any:
        return self.client.put(
            f"/v2/ha/retry/manifests/{tag}", content=self.manifest, headers={"Content-Type": _OCI}
        )

    def get(self, tag: str) -> Any:
        return self.client.get(f"/v2/ha/retry/manifests/{tag}", headers={"Accept": _OCI})


@pytest.fixture
def registry(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[_Registry]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=postgres_server.create_database(),
        admin_password="admin-password-1",
        scan_workers=0,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        client.auth = ("admin", "admin-password-1")
        yield _Registry(client, app.state.services.db, postgres_server)


def test_a_manifest_put_cut_by_a_failover_is_retried(registry: _Registry) -> None:
    registry.kills_left = 1
    answer = registry.put("cut-once")
    assert answer.status_code == 201, answer.text
    assert registry.killed == 1
    assert registry.get("cut-once").content == registry.manifest


def test_a_manifest_put_cut_for_too_long_is_a_clean_503(
    registry: _Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "RETRY_SECONDS", 0.5)
    registry.kills_left = 1000
    answer = registry.put("cut-always")
    assert answer.status_code == 503, answer.text
    assert answer.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert answer.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert registry.killed >= 2
    # Never half-done: no tag points anywhere, and the manifest is not there by digest either.
    registry.kills_left = 0
    assert registry.get("cut-always").status_code == 404
    assert registry.get(_sha(registry.manifest)).status_code == 404


def test_a_tag_delete_cut_by_a_failover_is_a_clean_503_not_retried(registry: _Registry) -> None:
    assert registry.put("kept").status_code == 201
    registry.statement, registry.kills_left = "DELETE FROM tags", 1
    answer = registry.client.delete("/v2/ha/retry/manifests/kept")
    assert answer.status_code == 503, answer.text
    assert answer.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert registry.killed == 1
    assert registry.get("kept").content == registry.manifest


@pytest.mark.parametrize(
    "statement",
    ["SAVEPOINT", "SELECT repositories.scan_on_push", "INSERT INTO daily_activity", "RELEASE SAVEPOINT"],
)
def test_a_manifest_put_cut_inside_a_push_hook_is_retried_whole(registry: _Registry, statement: str) -> None:
    """A push hook's failure is its own (a savepoint), but a failover during a hook cuts the push's whole
    transaction: it is run again as a whole, not committed on a dead connection (that was a 500)."""
    registry.statement, registry.kills_left = statement, 1
    answer = registry.put(f"hooked-{len(statement)}")
    assert answer.status_code == 201, answer.text
    assert registry.killed == 1
    assert registry.get(f"hooked-{len(statement)}").content == registry.manifest
