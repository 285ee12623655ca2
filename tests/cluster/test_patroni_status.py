"""The database members in the cluster status, from Patroni's REST API: role, state, lag, the leader, the
quorum; unreachable or hostile members (slow, huge, not JSON) cost a bounded time and are listed as such.

The answers are served by a local HTTP server in the shape Patroni 4's `GET /cluster` has (the real
Patroni is exercised by tests/ha)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from dockyard.cli import main
from dockyard.cluster.patroni import NOT_MANAGED, patroni_view
from dockyard.config import ClusterSettings, Settings

DEAD = "http://127.0.0.1:1"


def healthy(leader_api: str) -> dict[str, object]:
    """Patroni's view of a healthy cluster whose leader's REST API is `leader_api`."""
    return {
        "members": [
            {"name": "node1", "role": "leader", "state": "running", "api_url": f"{leader_api}/patroni",
             "host": "127.0.0.1", "port": 5432, "timeline": 3},
            {"name": "node2", "role": "sync_standby", "state": "streaming", "api_url": f"{DEAD}/patroni",
             "host": "127.0.0.1", "port": 5433, "timeline": 3, "lag": 0},
            {"name": "node3", "role": "replica", "state": "streaming", "host": "127.0.0.1", "port": 5434,
             "timeline": 3, "lag": 4096},
        ],
        "scope": "dockyard",
    }  # fmt: skip


NO_LEADER = {
    "members": [
        {"name": "node3", "role": "replica", "state": "running", "host": "127.0.0.1", "port": 5434,
         "timeline": 3, "lag": "unknown"},
    ]
}  # fmt: skip


class _Patroni:
    """A local server answering GET /cluster with `body` (bytes), after `delay` seconds."""

    def __init__(self) -> None:
        self.delay = 0.0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                time.sleep(owner.delay)
                self.send_response(200 if self.path == "/cluster" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                # The client may give up first (a test of the size or time bound).
                with contextlib.suppress(OSError):
                    self.wfile.write(owner.body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.body = json.dumps(healthy(self.url)).encode()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def patroni() -> Iterator[_Patroni]:
    server = _Patroni()
    yield server
    server.close()


def test_not_managed_by_patroni_says_so() -> None:
    view = patroni_view(ClusterSettings())
    assert not view.managed and view.note == NOT_MANAGED and view.members == [] and view.quorum is None


def test_members_leader_and_quorum(patroni: _Patroni) -> None:
    view = patroni_view(ClusterSettings(patroni_urls=[DEAD, patroni.url]))
    assert view.managed and view.leader == "node1" and view.quorum is True
    assert [(m.name, m.role, m.state, m.lag_bytes, m.reachable) for m in view.members] == [
        ("node1", "leader", "running", None, True),
        ("node2", "sync_standby", "streaming", 0, False),
        ("node3", "replica", "streaming", 4096, None),
    ]
    assert view.members[2].host == "127.0.0.1:5434" and view.members[2].timeline == 3
    assert view.unreachable == [DEAD]


def test_a_leader_whose_patroni_is_silent_is_no_leader(patroni: _Patroni) -> None:
    # Without etcd's quorum a survivor keeps showing the last leader it saw, dead or not.
    patroni.body = json.dumps(healthy(DEAD)).encode()
    view = patroni_view(ClusterSettings(patroni_urls=[DEAD, patroni.url]))
    assert view.leader is None and view.quorum is False
    first = view.members[0]
    assert (first.name, first.role, first.reachable) == ("node1", "leader", False)


def test_without_a_leader_the_quorum_is_lost(patroni: _Patroni) -> None:
    patroni.body = json.dumps(NO_LEADER).encode()
    view = patroni_view(ClusterSettings(patroni_urls=[patroni.url]))
    assert view.leader is None and view.quorum is False
    assert [(m.name, m.lag_bytes) for m in view.members] == [("node3", None)]


@pytest.mark.parametrize(
    "answer", ["slow", "huge", "not-json", "a-list", "members-not-objects", "wrong-types"]
)
def test_hostile_or_slow_members_are_bounded(patroni: _Patroni, answer: str) -> None:
    if answer == "slow":
        patroni.delay = 2.0
    elif answer == "huge":
        patroni.body = b'{"members": [' + b'{"name": "x"},' * 100_000 + b"{}]}"
    elif answer == "not-json":
        patroni.body = b"<html>nope</html>"
    elif answer == "a-list":
        patroni.body = b"[1, 2, 3]"
    elif answer == "members-not-objects":
        patroni.body = json.dumps({"members": ["node1", 5, None]}).encode()
    else:
        patroni.body = json.dumps(
            {"members": [{"name": ["x"], "role": {"a": 1}, "lag": True, "timeline": "3", "api_url": 5}]}
        ).encode()
    view = patroni_view(ClusterSettings(patroni_urls=[patroni.url], patroni_timeout_seconds=0.3))
    if answer in {"members-not-objects", "wrong-types"}:
        # Understood as far as it goes: nothing is believed that has the wrong type.
        assert view.leader is None and view.quorum is False and view.unreachable == []
        assert all(m.lag_bytes is None and m.timeline is None for m in view.members)
    else:
        assert view.members == [] and view.quorum is None and view.unreachable == [patroni.url]
        assert view.note == "no Patroni member answered"


@pytest.mark.parametrize(
    "urls",
    [["127.0.0.1:8008"], ["ftp://127.0.0.1:8008"], ["http://user:pw@127.0.0.1:8008"], ["http://h:1"] * 17],
)
def test_patroni_urls_are_validated(urls: list[str]) -> None:
    with pytest.raises(ValidationError):
        ClusterSettings(patroni_urls=urls)


def test_the_settings_file_section_and_the_cli(patroni: _Patroni, tmp_path: Path) -> None:
    config = tmp_path / "dockyard.toml"
    config.write_text(f'[cluster]\npatroni_urls = ["{patroni.url}/"]\npatroni_timeout_seconds = 1.5\n')
    runner = CliRunner()
    answer = runner.invoke(
        main, ["cluster", "status", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--init"]
    )
    assert answer.exit_code == 0, answer.output
    assert "database members: 3, leader node1, quorum holds" in answer.output
    assert "node3\t127.0.0.1:5434\treplica\tstreaming\tlag 4096 B" in answer.output
    as_json = runner.invoke(
        main,
        ["cluster", "status", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--json"],
    )
    assert json.loads(as_json.output)["database_cluster"]["leader"] == "node1"
    settings = Settings(cluster={"patroni_urls": [patroni.url]})
    assert settings.cluster.patroni_urls == [patroni.url]
