"""The UI finds its viewer through the one credential resolver and names them to the access log."""

from __future__ import annotations

import logging

import pytest
from auth_support import PASSWORD, World
from pages_support import sign_in
from starlette.testclient import TestClient


def _users(caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    records = [r for r in caplog.records if r.name == "dockyard.access"]
    return {r.access["request_id"]: r.access["user"] for r in records}  # type: ignore[attr-defined]


def test_the_access_log_names_the_ui_viewer(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dockyard.access")
    client = TestClient(world.client.app, raise_server_exceptions=False)
    client.__enter__()
    before = client.get("/")
    sign_in(client, "alice", PASSWORD)
    after = client.get("/")
    assert after.status_code == 200
    # A session that has ended on the server is nobody's, whatever cookie the browser still sends.
    cookie = client.cookies.get("dockyard_session")
    assert cookie is not None
    world.auth.credentials.end_session(cookie)
    ended = client.get("/")
    assert ended.status_code == 200
    users = _users(caplog)
    assert users[before.headers["x-request-id"]] == "-"
    assert users[after.headers["x-request-id"]] == "alice"
    assert users[ended.headers["x-request-id"]] == "-"
