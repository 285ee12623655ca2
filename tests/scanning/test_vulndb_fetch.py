"""Importing advisories from URLs (a real HTTP server on 127.0.0.1) and the scheduled sync across replicas."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from dockyard.app import Services, build_services
from dockyard.cli import main
from dockyard.config import load_settings
from dockyard.jobs.worker import JobRunner
from dockyard.scanning.vulndb_sync import SYNC_JOB, VulnDbSync

RECORDS = [
    {
        "id": f"DSA-{n}-1",
        "summary": f"advisory {n}",
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "zlib"}, "versions": ["1.0-1"]}],
    }
    for n in (1, 2)
]


def _zip(records: list[dict[str, object]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for record in records:
            archive.writestr(f"{record['id']}.json", json.dumps(record))
    return buffer.getvalue()


class Feed(BaseHTTPRequestHandler):
    """Serves osv.dev-like files, and broken answers."""

    requests: ClassVar[list[str]] = []
    body = _zip(RECORDS)

    def do_GET(self) -> None:
        Feed.requests.append(self.path)
        if self.path == "/Debian/all.zip":
            self._send(200, self.body)
        elif self.path == "/short.zip":
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body) + 1000))
            self.end_headers()
            self.wfile.write(self.body[:100])
        elif self.path == "/garbage.zip":
            self._send(200, b"this is not a zip file " * 10)
        else:
            self._send(404, b"not found")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def feed() -> Iterator[str]:
    """The base URL of the feed server, stopped after the test."""
    Feed.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _cli(data_dir: Path, *args: str) -> tuple[int, str]:
    # Each test's data directory starts empty: the first command makes the registry (--init).
    result = CliRunner().invoke(main, ["vulndb", *args, "--data-dir", str(data_dir), "--init"])
    return result.exit_code, result.output


def test_import_from_a_url_names_the_source_after_the_ecosystem(feed: str, tmp_path: Path) -> None:
    code, output = _cli(tmp_path, "import", f"{feed}/Debian/all.zip")
    assert code == 0, output
    assert "Debian: 2 records read, 2 added" in output
    code, output = _cli(tmp_path, "import", f"{feed}/Debian/all.zip")
    assert "Debian: 2 records read, 0 added, 0 updated, 2 unchanged" in output
    code, output = _cli(tmp_path, "status")
    assert "Debian 2" in output
    assert list((tmp_path / "tmp").iterdir()) == []  # the download is gone


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/missing.zip", "the server answered 404"),
        ("/short.zip", "cut short"),
        ("/garbage.zip", ""),
    ],
)
def test_failed_downloads_are_clear_and_leave_nothing(
    feed: str, tmp_path: Path, path: str, message: str
) -> None:
    code, output = _cli(tmp_path, "import", f"{feed}{path}")
    assert code == 1 and output.splitlines()[-1].startswith("Error: ") and message in output
    assert "Traceback" not in output
    assert not any((tmp_path / "tmp").iterdir())
    assert "total 0 advisories" in _cli(tmp_path, "status")[1]


def test_download_limit(feed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_VULNDB_MAX_DOWNLOAD_BYTES", "100")
    code, output = _cli(tmp_path, "import", f"{feed}/Debian/all.zip")
    assert code == 1 and "over the limit of 100" in output


def test_unreachable_url_and_file_urls(tmp_path: Path) -> None:
    code, output = _cli(tmp_path, "import", "http://127.0.0.1:9/Debian/all.zip")
    assert code == 1 and "cannot fetch" in output
    local = tmp_path / "feed" / "Alpine" / "all.zip"
    local.parent.mkdir(parents=True)
    local.write_bytes(_zip(RECORDS))
    code, output = _cli(tmp_path, "import", local.as_uri())
    assert code == 0 and "Alpine: 2 records read" in output
    code, output = _cli(tmp_path, "import", str(tmp_path / "nowhere.zip"))
    assert code == 2 and "neither an existing path nor a URL" in output


def _replica(data_dir: Path, urls: list[str]) -> Services:
    return build_services(
        load_settings(data_dir=data_dir, vulndb_sync_urls=urls, vulndb_sync_interval_seconds=60)
    )


def test_scheduled_sync_runs_once_per_interval_across_replicas(feed: str, tmp_path: Path) -> None:
    replicas = [_replica(tmp_path, [f"{feed}/Debian/all.zip"]) for _ in range(2)]
    try:
        assert [r.vulndb_sync.schedule(now=600.0) for r in replicas] == [True, False]
        runners = [JobRunner(r.jobs, r.vulndb_sync.handlers()) for r in replicas]
        assert sum(runner.run_pending(5) for runner in runners) == 1
        assert Feed.requests == ["/Debian/all.zip"]
        # Done for this interval: the other replica scheduling it late changes nothing.
        assert replicas[1].vulndb_sync.schedule(now=650.0) is False
        assert replicas[1].vulndb_sync.schedule(now=660.0) is True  # the next interval
        status, sync = replicas[0].vulndb_sync.status()
        assert status.sources == {"Debian": 2}
        assert (sync.urls, sync.interval_seconds) == ((f"{feed}/Debian/all.zip",), 60)
    finally:
        for replica in replicas:
            replica.db.close()


def test_failed_sync_keeps_the_data_and_reports_the_error(feed: str, tmp_path: Path) -> None:
    good = _replica(tmp_path, [f"{feed}/Debian/all.zip"])
    assert good.vulndb_sync.sync_once() == []
    good.db.close()
    broken = _replica(tmp_path, [f"{feed}/gone.zip"])
    try:
        broken.vulndb_sync.schedule(now=0.0)
        JobRunner(broken.jobs, broken.vulndb_sync.handlers()).run_pending(1)
        status, sync = broken.vulndb_sync.status()
        assert status.sources == {"Debian": 2}
        assert sync.last_state == "queued"  # retried later
        assert sync.last_error is not None and "gone.zip: " in sync.last_error and "404" in sync.last_error
        assert broken.jobs.state(SYNC_JOB, ["0"])["0"][0] == "queued"
    finally:
        broken.db.close()


def test_sync_url_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not an http, https or file URL"):
        load_settings(data_dir=tmp_path, vulndb_sync_urls=["ftp://example.invalid/all.zip"])


def test_sync_does_nothing_without_urls(tmp_path: Path) -> None:
    services = _replica(tmp_path, [])
    try:
        assert services.vulndb_sync.schedule() is False
        assert isinstance(services.vulndb_sync, VulnDbSync)
    finally:
        services.db.close()
