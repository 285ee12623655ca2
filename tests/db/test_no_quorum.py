"""A cluster without quorum: no member accepts writes, yet reads go on (on PostgreSQL with a multi-host URL).

A real standby is simulated with a role whose sessions are read-only by default: libpq's
target_session_attrs=read-write refuses such a server exactly as it refuses a hot standby.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from dockyard.app import create_app
from dockyard.auth.errors import Throttled
from dockyard.auth.identity import Credential, Identity
from dockyard.auth.keys import KeyRing
from dockyard.auth.throttle import FallbackCounts, LoginThrottle
from dockyard.config import Settings
from dockyard.db import engine as engine_module
from dockyard.db.accounts import FailureRow
from dockyard.db.engine import Database, DatabaseReadOnly, DatabaseUnavailable
from support import PostgresServer

SYSTEM = Identity(user_id=0, name="test", is_admin=True)

pytestmark = pytest.mark.postgres
_roles = itertools.count()


def _conninfo(postgres_server: PostgresServer, database: str) -> str:
    """The superuser's libpq string for `database` (a name or a URL)."""
    name = make_url(database).database if "/" in database else database
    return postgres_server.admin_conninfo.replace("dbname=postgres", f"dbname={name}")


def _urls(postgres_server: PostgresServer) -> tuple[str, str]:
    """(read-write URL, the same for a read-only role) over a fresh database with one table and row."""
    url = postgres_server.create_database()
    database = url.rsplit("/", 1)[1]
    role = f"standby_{next(_roles)}"
    with psycopg.connect(postgres_server.admin_conninfo, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
    with psycopg.connect(_conninfo(postgres_server, database)) as db:
        db.execute("CREATE TABLE facts (v text)")
        db.execute("INSERT INTO facts VALUES ('kept')")
        db.execute(f"GRANT SELECT, INSERT ON facts TO {role}")
    port = postgres_server.port
    # Two hosts, the first one dead: the URL is the cluster's kind, and the dead one costs no time.
    hosts = f"host=127.0.0.1:1&host=127.0.0.1:{port}&target_session_attrs=read-write&connect_timeout=3"
    return (
        f"postgresql+psycopg://postgres@/{database}?{hosts}",
        f"postgresql+psycopg://{role}@/{database}?{hosts}",
    )


def test_reads_and_writes_with_a_writable_member(postgres_server: PostgresServer) -> None:
    writable, _ = _urls(postgres_server)
    db = Database(writable)
    try:
        with db.write() as conn:
            conn.execute(text("INSERT INTO facts VALUES ('new')"))
        with db.read() as conn:
            assert sorted(conn.execute(text("SELECT v FROM facts")).scalars()) == ["kept", "new"]
    finally:
        db.close()


def test_without_a_writable_member_reads_work_and_writes_say_why(postgres_server: PostgresServer) -> None:
    _, read_only = _urls(postgres_server)
    db = Database(read_only)
    try:
        with db.read() as conn:
            assert list(conn.execute(text("SELECT v FROM facts")).scalars()) == ["kept"]
        db.ping()
        for durable in (True, False):
            refused = pytest.raises(DatabaseReadOnly, match="read-only: the database has no quorum")
            with refused, db.write(durable):
                pytest.fail("a write must not start")
    finally:
        db.close()


def test_reads_skip_the_missing_writable_member_for_a_while(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a real partition each attempt on the writable member costs connect_timeout: after one failed,
    reads go to any member at once until WRITER_RECHECK_SECONDS have passed; then it is tried again."""
    _, read_only = _urls(postgres_server)
    db = Database(read_only)
    attempts: list[object] = []
    event.listen(db.engine, "do_connect", lambda *args: attempts.append(args))
    try:
        monkeypatch.setattr(engine_module, "WRITER_RECHECK_SECONDS", 3600.0)
        for _ in range(3):
            with db.read() as conn:
                assert list(conn.execute(text("SELECT v FROM facts")).scalars()) == ["kept"]
        assert len(attempts) == 1
        monkeypatch.setattr(engine_module, "WRITER_RECHECK_SECONDS", 0.0)
        for expected in (2, 3):
            with db.read() as conn:
                assert list(conn.execute(text("SELECT v FROM facts")).scalars()) == ["kept"]
            assert len(attempts) == expected
        with pytest.raises(DatabaseReadOnly), db.write():
            pytest.fail("a write must not start")
    finally:
        db.close()


def test_a_replica_starting_without_quorum_signs_with_a_key_due_for_rotation(
    postgres_server: PostgresServer,
) -> None:
    writable, read_only = _urls(postgres_server)
    with psycopg.connect(_conninfo(postgres_server, writable)) as admin:
        role = make_url(read_only).username
        admin.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}")
    leader = Database(writable)
    leader.migrate()
    first = KeyRing(leader, token_ttl_seconds=300).current
    leader.close()
    survivor = Database(read_only)
    try:
        # The key is due: a writable database would rotate it now; this one keeps signing with it.
        ring = KeyRing(survivor, token_ttl_seconds=300, rotation_seconds=0.001)
        assert ring.current.kid == first.kid
        assert ring.public_key(first.kid) is not None
    finally:
        survivor.close()


def test_no_member_at_all_is_unavailable_not_read_only() -> None:
    db = Database(
        "postgresql+psycopg://x@/d?host=127.0.0.1:1&host=127.0.0.1:2&target_session_attrs=read-write"
    )
    try:
        with pytest.raises(DatabaseUnavailable) as raised, db.read():
            pass
        assert not isinstance(raised.value, DatabaseReadOnly)
        with pytest.raises(DatabaseUnavailable) as raised, db.write():
            pass
        assert not isinstance(raised.value, DatabaseReadOnly)
    finally:
        db.close()


# The whole application on a database without quorum: logins, tokens and pulls work, pushes say why not.

ALICE_PASSWORD = "alice-password-1"
_OCI = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class _CutOff:
    """An app on a read-only database (no quorum) holding what a writable app pushed before."""

    client: TestClient
    app: Any
    access_token: str
    images: dict[str, tuple[bytes, dict[str, bytes]]]

    def from_address(self, address: str) -> TestClient:
        """A client of the same app seen from another address."""
        return TestClient(self.app, client=(address, 40000))


def _sha(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _push(client: TestClient, repository: str, layer: bytes) -> tuple[bytes, dict[str, bytes]]:
    """A one-layer image pushed with Basic credentials; (manifest bytes, blobs by digest)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "repo": repository}).encode()
    blobs = {_sha(config): config, _sha(layer): layer}
    for digest, data in blobs.items():
        answer = client.post(f"/v2/{repository}/blobs/uploads/", params={"digest": digest}, content=data)
        assert answer.status_code == 201, answer.text
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": _OCI,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _sha(config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _sha(layer),
                        "size": len(layer)}],
        }
    ).encode()  # fmt: skip
    answer = client.put(f"/v2/{repository}/manifests/v1", content=manifest, headers={"Content-Type": _OCI})
    assert answer.status_code == 201, answer.text
    return manifest, blobs


@pytest.fixture
def cut_off(postgres_server: PostgresServer, tmp_path: Path, cheap_hashes: None) -> Iterator[_CutOff]:
    """Alice's public and private images pushed through a writable app; then an app whose database role
    only reads (the standby of a cluster without quorum), on the same blob store."""
    writable, read_only = _urls(postgres_server)
    common: dict[str, Any] = {
        "storage": {"filesystem": {"path": tmp_path / "blobs"}},
        "admin_password": "admin-password-1",
        "anonymous_pull": True,
        "login_throttle_threshold": 3,
        "login_throttle_base_seconds": 300,
    }
    app = create_app(Settings(data_dir=tmp_path / "a", database_url=writable, **common))
    images: dict[str, tuple[bytes, dict[str, bytes]]] = {}
    with TestClient(app) as before:
        auth = app.state.auth
        alice = auth.accounts.create_user(None, "alice", ALICE_PASSWORD)
        for visibility in ("public", "private"):
            auth.repositories.create(SYSTEM, f"alice/{visibility}", visibility)
        _, access_token = auth.credentials.create_access_token(
            Identity(user_id=alice.id, name="alice", credential=Credential.PASSWORD), "ci"
        )
        before.auth = ("alice", ALICE_PASSWORD)
        for visibility in ("public", "private"):
            images[visibility] = _push(before, f"alice/{visibility}", os.urandom(512))
    role = make_url(read_only).username
    with psycopg.connect(_conninfo(postgres_server, writable), autocommit=True) as admin:
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    app = create_app(Settings(data_dir=tmp_path / "b", database_url=read_only, **common))
    with TestClient(app) as client:
        yield _CutOff(client, app, access_token, images)


def _token(client: TestClient, auth: tuple[str, str] | None, scope: str, **params: str) -> httpx.Response:
    return client.get("/auth/token", params={"service": "dockyard", "scope": scope, **params}, auth=auth)


def _pulled(client: TestClient, repository: str, token: str) -> tuple[bytes, dict[str, bytes]]:
    headers = {"Authorization": f"Bearer {token}", "Accept": _OCI}
    answer = client.get(f"/v2/{repository}/manifests/v1", headers=headers)
    assert answer.status_code == 200, answer.text
    blobs = {}
    for layer in [answer.json()["config"], *answer.json()["layers"]]:
        blob = client.get(f"/v2/{repository}/blobs/{layer['digest']}", headers=headers)
        assert blob.status_code == 200, blob.text
        blobs[layer["digest"]] = blob.content
    return answer.content, blobs


def test_logins_and_pulls_work_without_quorum(cut_off: _CutOff) -> None:
    client = cut_off.client
    # A password login, docker login's too (it asks for a refresh token, which cannot be stored now).
    for extra in ({}, {"offline_token": "true", "client_id": "docker"}):
        answer = _token(client, ("alice", ALICE_PASSWORD), "repository:alice/private:pull", **extra)
        assert answer.status_code == 200, answer.text
        assert "refresh_token" not in answer.json()
        assert _pulled(client, "alice/private", answer.json()["token"]) == cut_off.images["private"]
    # A personal access token (its "last used" time is not recorded).
    answer = _token(client, ("alice", cut_off.access_token), "repository:alice/private:pull")
    assert answer.status_code == 200, answer.text
    assert _pulled(client, "alice/private", answer.json()["token"]) == cut_off.images["private"]
    # Basic credentials on /v2/ itself.
    manifest = client.get("/v2/alice/private/manifests/v1", auth=("alice", ALICE_PASSWORD))
    assert manifest.status_code == 200 and manifest.content == cut_off.images["private"][0]
    # Anonymous pulls of a public repository; a private one stays closed.
    anonymous = _token(client, None, "repository:alice/public:pull")
    assert anonymous.status_code == 200
    assert _pulled(client, "alice/public", anonymous.json()["token"]) == cut_off.images["public"]
    closed = client.get("/v2/alice/private/manifests/v1", headers={"Accept": _OCI})
    assert closed.status_code == 401
    # The API with Basic credentials; a browser session cannot be stored, and says why.
    assert client.get("/api/v1/me", auth=("alice", ALICE_PASSWORD)).status_code == 200
    session = client.post("/api/v1/session", json={"name": "alice", "password": ALICE_PASSWORD})
    assert session.status_code == 503, session.text
    assert "read-only: the database has no quorum" in session.text


@pytest.mark.parametrize("what", ["manifest", "blob", "tag-delete"])
def test_writes_without_quorum_answer_503_in_oci_json(cut_off: _CutOff, what: str) -> None:
    client = cut_off.client
    token = _token(client, ("alice", ALICE_PASSWORD), "repository:alice/public:pull,push,delete")
    headers = {"Authorization": f"Bearer {token.json()['token']}"}
    manifest = cut_off.images["public"][0]
    if what == "manifest":
        answer = client.put(
            "/v2/alice/public/manifests/v2", content=manifest, headers={**headers, "Content-Type": _OCI}
        )
    elif what == "blob":
        data = b"new layer"
        answer = client.post(
            "/v2/alice/public/blobs/uploads/", params={"digest": _sha(data)}, content=data, headers=headers
        )
    else:
        answer = client.delete("/v2/alice/public/manifests/v1", headers=headers)
    assert answer.status_code == 503, answer.text
    assert answer.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    errors = answer.json()["errors"]
    assert errors[0]["code"] == "UNAVAILABLE"
    assert "read-only: the database has no quorum" in errors[0]["message"]
    # Nothing changed: the tag still names the same manifest.
    assert (
        client.get("/v2/alice/public/manifests/v1", headers={**headers, "Accept": _OCI}).content == manifest
    )


@pytest.mark.parametrize("surface", ["token", "v2"])
def test_guessing_without_quorum_is_still_throttled_in_memory(cut_off: _CutOff, surface: str) -> None:
    guesser = cut_off.from_address("192.0.2.66")

    def attempt(client: TestClient, password: str) -> int:
        if surface == "token":
            return _token(client, ("alice", password), "repository:alice/private:pull").status_code
        return client.get("/v2/", auth=("alice", password)).status_code

    codes = [attempt(guesser, f"wrong-{number}") for number in range(8)]
    # The threshold (3) is evaluated, then the address is locked out, even with the right password.
    assert codes == [401] * 3 + [429] * 5, codes
    assert attempt(guesser, ALICE_PASSWORD) == 429
    # Alice from elsewhere still gets in, and so does another user behind the guesser's address.
    assert attempt(cut_off.from_address("198.51.100.7"), ALICE_PASSWORD) == 200
    assert cut_off.app.state.auth.throttle.fallback.get("pair:alice|192.0.2.66", FailureRow()).failures >= 3


def test_counts_the_database_holds_still_apply_without_quorum(postgres_server: PostgresServer) -> None:
    writable, read_only = _urls(postgres_server)
    db = Database(writable)
    try:
        db.migrate()
    finally:
        db.close()
    now = time.time()
    with psycopg.connect(_conninfo(postgres_server, writable), autocommit=True) as admin:
        admin.execute(
            "INSERT INTO login_failures (key, failures, last_failure_at, blocked_until)"
            " VALUES (%s, 9, %s, %s)",
            ("pair:bob|192.0.2.1", now, now + 600),
        )
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {make_url(read_only).username}")
    db = Database(read_only)
    try:
        throttle = LoginThrottle(db, threshold=3, base_seconds=2, max_seconds=900)
        with pytest.raises(Throttled):
            throttle.reserve("bob", "192.0.2.1")
        reservation = throttle.reserve("bob", "192.0.2.2")
        assert reservation.in_memory
        throttle.succeeded(reservation, signed_in_at=now)
    finally:
        db.close()


def test_the_fallback_counts_are_bounded() -> None:
    counts = FallbackCounts()
    with counts.lock:
        for number in range(FallbackCounts.MAX_KEYS + 50):
            counts.put(f"pair:u{number}|-", FailureRow(1, 1.0, 0.0))
        # The oldest went first; a count of zero is forgotten at once.
        assert counts.get("pair:u0|-", FailureRow()) == FailureRow()
        assert counts.get(f"pair:u{FallbackCounts.MAX_KEYS + 49}|-", FailureRow()).failures == 1
        counts.put("pair:u60|-", FailureRow())
        assert counts.get("pair:u60|-", FailureRow(2, 5.0, 9.0)) == FailureRow(2, 5.0, 9.0)
        assert len(counts) <= FallbackCounts.MAX_KEYS
