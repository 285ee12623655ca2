"""What the pull path costs on PostgreSQL, counted by the server itself, and reads that outlive their
connections: terminated backends, a restarted server, a connection lost between checkout and statement."""

from __future__ import annotations

import json
import os
import re
import select
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from argon2 import PasswordHasher
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from dockyard.app import build_services, create_app
from dockyard.auth import passwords
from dockyard.config import Settings
from dockyard.db import content as q
from dockyard.db.engine import Database, DatabaseReadOnly
from registry.registry_support import OCI_MANIFEST, image_manifest, put_manifest, sha256
from support import PostgresServer

pytestmark = pytest.mark.postgres

_ADMIN = ("admin", "admin-password-1")
# What PostgreSQL logs for each statement a client sends (log_statement = all): simple and extended protocol.
_STATEMENT = re.compile(r"LOG:  (?:statement|execute [^:]*): (.*)")


def _conninfo(server: PostgresServer, url: str) -> str:
    return server.admin_conninfo.replace("dbname=postgres", f"dbname={make_url(url).database}")


class _StatementLog:
    """The statements PostgreSQL ran for one database, read from the server's log between two markers."""

    def __init__(self, server: PostgresServer, url: str) -> None:
        self.server = server
        self.conninfo = _conninfo(server, url)
        with psycopg.connect(server.admin_conninfo, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {make_url(url).database} SET log_statement = 'all'")

    def _mark(self) -> str:
        mark = f"dockyard-mark-{uuid.uuid4().hex}"
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f"SELECT '{mark}'")
        return mark

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        """A list that holds, once the block ends, the statements other sessions sent during it."""
        found: list[str] = []
        start = self._mark()
        yield found
        end = self._mark()
        log = self.server.log(tail=2_000_000)
        between = log.split(start, 1)[1].split(end, 1)[0].splitlines()[1:-1]
        found.extend(match.group(1) for line in between if (match := _STATEMENT.search(line)))


@dataclass
class _Pulls:
    client: TestClient
    log: _StatementLog
    headers: dict[str, str]
    manifest: bytes
    layer_digest: str


@pytest.fixture
def pulls(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[_Pulls]:
    """An application on PostgreSQL holding one image, its background work not started (no lifespan), so
    the statements in the log are the requests' own; a bearer token for pulls, as `docker pull` has."""
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    for name in list(os.environ):
        if name.startswith("DOCKYARD_"):
            monkeypatch.delenv(name)
    url = postgres_server.create_database()
    log = _StatementLog(postgres_server, url)
    settings = Settings(
        data_dir=tmp_path / "data", database_url=url, admin_password=_ADMIN[1], token_account_check_seconds=60
    )
    services = build_services(settings)
    try:
        client = TestClient(create_app(settings, services=services))
        client.auth = _ADMIN
        manifest = image_manifest(client, "lib/app")
        put = put_manifest(client, "lib/app", "v1", manifest, OCI_MANIFEST)
        assert put.status_code == 201, put.text
        scope = {"service": settings.service, "scope": "repository:lib/app:pull"}
        token = client.get("/auth/token", params=scope)
        client.auth = None
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['token']}", "Accept": OCI_MANIFEST}
        yield _Pulls(client, log, headers, manifest, json.loads(manifest)["layers"][0]["digest"])
    finally:
        services.db.close()


def test_each_pull_request_is_one_statement_without_a_transaction(pulls: _Pulls) -> None:
    """docker pull's requests on PostgreSQL: a manifest HEAD or GET (by tag or digest) and a blob HEAD are
    one statement each, a blob GET two (the blob, then the cache that may serve it); no BEGIN, COMMIT or
    liveness ping around them. Before: ping, BEGIN, statement(s), COMMIT per transaction."""
    manifest_digest = sha256(pulls.manifest)
    layer_digest = pulls.layer_digest
    requests = {
        ("GET", "/v2/lib/app/manifests/v1"): ["SELECT repositories.id AS repository_id"],
        ("HEAD", "/v2/lib/app/manifests/v1"): ["SELECT repositories.id AS repository_id"],
        ("GET", f"/v2/lib/app/manifests/{manifest_digest}"): ["SELECT repositories.id AS repository_id"],
        ("HEAD", f"/v2/lib/app/blobs/{layer_digest}"): ["SELECT blobs.size"],
        ("GET", f"/v2/lib/app/blobs/{layer_digest}"): ["SELECT blobs.size", "SELECT anon_1.name, anon_1.url"],
    }
    # Warm: the token's account check, the manifest's bytes in the process's cache, prepared statements.
    for method, path in requests:
        for _ in range(6):
            assert pulls.client.request(method, path, headers=pulls.headers).status_code == 200
    for (method, path), expected in requests.items():
        with pulls.log.counting() as statements:
            answers = [pulls.client.request(method, path, headers=pulls.headers) for _ in range(4)]
        assert [answer.status_code for answer in answers] == [200] * 4
        digest = path.rsplit("/", 1)[1] if path.startswith("/v2/lib/app/blobs/") else manifest_digest
        assert answers[0].headers["Docker-Content-Digest"] == digest
        if method == "GET":
            assert sha256(answers[0].content) == digest
        else:
            assert answers[0].content == b""
        kinds = [next((want for want in expected if sql.startswith(want)), sql[:60]) for sql in statements]
        assert kinds == expected * 4, f"{method} {path}: {statements}"


def test_a_missing_manifest_or_blob_is_still_one_statement(pulls: _Pulls) -> None:
    missing = sha256(b"not pushed")
    # Warm: the token's account check (once a minute here).
    assert pulls.client.get("/v2/lib/app/manifests/v1", headers=pulls.headers).status_code == 200
    for path, code in (
        ("/v2/lib/app/manifests/nope", "MANIFEST_UNKNOWN"),
        (f"/v2/lib/app/manifests/{missing}", "MANIFEST_UNKNOWN"),
        (f"/v2/lib/app/blobs/{missing}", "BLOB_UNKNOWN"),
    ):
        with pulls.log.counting() as statements:
            answer = pulls.client.get(path, headers=pulls.headers)
        assert answer.status_code == 404
        assert answer.json()["errors"][0]["code"] == code
        assert len(statements) == 1, "\n".join(statements)
        assert not any(sql.startswith(("BEGIN", "COMMIT")) for sql in statements)


# Reads that outlive their connections.


def _backends(server: PostgresServer, url: str) -> set[int]:
    """The server processes serving the database (this check's own left out)."""
    with psycopg.connect(_conninfo(server, url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return {row[0] for row in rows}


def _terminate(server: PostgresServer, url: str) -> set[int]:
    """pg_terminate_backend on every connection to the database; returns once they are gone."""
    victims = _backends(server, url)
    assert victims, "the pool holds no connection to terminate"
    with psycopg.connect(server.admin_conninfo, autocommit=True) as admin:
        for pid in victims:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + 10
    while _backends(server, url) & victims:
        assert time.monotonic() < deadline, "the terminated backends did not go"
        time.sleep(0.05)
    return victims


@pytest.fixture
def facts_db(postgres_server: PostgresServer) -> Iterator[tuple[Database, str]]:
    """A migrated database (the pull statements need the schema) with one repository, and its URL."""
    url = postgres_server.create_database()
    db = Database(url)
    db.migrate()
    with db.write() as conn:
        q.ensure_repository(conn, "lib/app")
    try:
        yield db, url
    finally:
        db.close()


def _fill_pool(db: Database, connections: int) -> None:
    """Open `connections` pooled connections (held at once), then give them back to the pool."""
    opened = [db.engine.connect() for _ in range(connections)]
    for conn in opened:
        conn.exec_driver_sql("SELECT 1")
        conn.close()


def _repository_found(db: Database) -> bool:
    found, _ = q.quick_manifest_for_pull(db, "lib/app", "v1", by_digest=False)
    return found


@pytest.mark.parametrize("how", ["quick", "read", "write"])
def test_reads_and_writes_after_every_pooled_backend_was_terminated(
    facts_db: tuple[Database, str], postgres_server: PostgresServer, how: str
) -> None:
    db, url = facts_db
    _fill_pool(db, 3)
    victims = _terminate(postgres_server, url)
    for _ in range(4):
        if how == "quick":
            assert _repository_found(db)
        elif how == "read":
            with db.read() as conn:
                assert conn.execute(text("SELECT count(*) FROM repositories")).scalar_one() == 1
        else:
            with db.write() as conn:
                conn.execute(text("UPDATE repositories SET scan_on_push = scan_on_push"))
    assert not _backends(postgres_server, url) & victims


def test_a_connection_lost_between_checkout_and_statement_is_read_again(
    facts_db: tuple[Database, str], postgres_server: PostgresServer
) -> None:
    """The server cut the connection after the pool handed it out (no check can see that coming): the
    quick read fails, the pool is invalidated, and the read runs once more on a new connection."""
    db, url = facts_db
    assert _repository_found(db)
    cuts: list[int] = []

    def cut_once(driver: Any, *_args: Any) -> None:
        if not cuts:
            cuts.append(driver.info.backend_pid)
            _terminate(postgres_server, url)

    # After the pool's own check on checkout (registered first), before the statement.
    event.listen(db.engine, "checkout", cut_once)
    assert _repository_found(db)
    assert len(cuts) == 1
    assert cuts[0] not in _backends(postgres_server, url)


def test_an_alive_connection_with_something_to_read_is_kept(
    facts_db: tuple[Database, str], postgres_server: PostgresServer
) -> None:
    """A readable socket is not proof of death: a notification waiting on a live pooled connection costs
    a ping, and the pool keeps the connection (the same backend serves the next checkout)."""
    db, url = facts_db
    with db.engine.connect() as conn:
        conn.exec_driver_sql("LISTEN dockyard_test")
        conn.commit()
        driver = conn.connection.driver_connection
        assert driver is not None
        pid = driver.info.backend_pid
    with psycopg.connect(_conninfo(postgres_server, url), autocommit=True) as other:
        other.execute("NOTIFY dockyard_test")
    poller = select.poll()
    poller.register(driver.fileno(), select.POLLIN)
    assert poller.poll(5000), "the notification did not arrive"
    with db.engine.connect() as conn:
        again = conn.connection.driver_connection
        assert again is driver and again.info.backend_pid == pid
    assert _backends(postgres_server, url) == {pid}


def test_reads_after_the_server_restarted() -> None:
    server = PostgresServer()
    server.start()
    try:
        url = server.create_database()
        db = Database(url)
        try:
            db.migrate()
            with db.write() as conn:
                q.ensure_repository(conn, "lib/app")
            _fill_pool(db, 2)
            server.restart()
            with db.read() as conn:
                assert conn.execute(text("SELECT count(*) FROM repositories")).scalar_one() == 1
            with db.write() as conn:
                conn.execute(text("UPDATE repositories SET scan_on_push = scan_on_push"))
            assert _repository_found(db)
        finally:
            db.close()
    finally:
        server.stop()


def test_quick_reads_without_a_writable_member_go_to_any_member(postgres_server: PostgresServer) -> None:
    """No quorum: a quick read goes where read() goes, to a member that only reads."""
    url = postgres_server.create_database()
    database = make_url(url).database
    role = f"reader_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.admin_conninfo, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
    db = Database(url)
    db.migrate()
    with db.write() as conn:
        q.ensure_repository(conn, "lib/app")
    db.close()
    with psycopg.connect(_conninfo(postgres_server, url), autocommit=True) as admin:
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    # Two hosts, the first one dead, the second only reading: libpq refuses it as the writable member.
    hosts = f"host=127.0.0.1:1&host=127.0.0.1:{postgres_server.port}&target_session_attrs=read-write"
    cut_off = Database(f"postgresql+psycopg://{role}@/{database}?{hosts}&connect_timeout=3")
    try:
        for _ in range(3):
            assert _repository_found(cut_off)
        with pytest.raises(DatabaseReadOnly), cut_off.write():
            pytest.fail("a write must not start")
    finally:
        cut_off.close()
