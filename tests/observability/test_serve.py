"""A real `dockyard serve` with two worker processes: metrics summed across them, logs as configured."""

from __future__ import annotations

import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support import DockyardFactory, free_port

ADMIN = {"DOCKYARD_ADMIN_PASSWORD": "serve-admin-password"}


def metrics_dir(runtime: Path, port: int) -> Path:
    """Where serve keeps its value files when XDG_RUNTIME_DIR is `runtime`."""
    return runtime / f"dockyard-metrics-{os.geteuid()}-127.0.0.1-{port}"


def counted(url: str, route: str, status: str) -> float:
    """Requests counted for GET `route` answered with `status`, from one scrape."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "dockyard_http_request_duration_seconds_count" and sample.labels == {
                "method": "GET",
                "route": route,
                "status": status,
            }:
                return sample.value
    return 0.0


def test_counts_from_both_workers_are_summed(dockyard_server: DockyardFactory, tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    port = free_port()
    directory = metrics_dir(runtime, port)
    # A previous run's files must not add to this run's counts.
    directory.mkdir(mode=0o755)
    (directory / "counter_999999.db").write_bytes(b"stale")
    server = dockyard_server(
        args=["--workers", "2"], env={"XDG_RUNTIME_DIR": str(runtime), **ADMIN}, port=port
    )
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert not (directory / "counter_999999.db").exists()

    def ping_once(_: int) -> int:
        # A new connection each time, so the kernel spreads them over both workers' accept loops.
        with httpx.Client(timeout=10) as client:
            return client.get(f"{server.url}/v2/").status_code

    sent = 0
    with ThreadPoolExecutor(8) as pool:
        while sent < 2000:
            assert set(pool.map(ping_once, range(40))) == {401}
            sent += 40
            if len(list(directory.glob("histogram_*.db"))) >= 2:
                break
    assert len(list(directory.glob("histogram_*.db"))) == 2, "both workers served requests"
    # Whichever worker answers the scrape, it reports both workers' requests.
    for _ in range(4):
        assert counted(server.url, "/v2/", "401") == sent
    server.stop()
    assert not directory.exists(), "serve removes its metrics directory at exit"


def test_json_logs_from_every_process(dockyard_server: DockyardFactory, tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    env = {"XDG_RUNTIME_DIR": str(runtime), **ADMIN}
    server = dockyard_server(args=["--workers", "2", "--log-format", "json"], env=env)
    answer = httpx.get(f"{server.url}/v2/some/repo/tags/list", timeout=10)
    request_id = answer.headers["x-request-id"]
    server.stop()
    lines = [line for line in server.log(200_000).splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(e["logger"] == "_granian" for e in entries), "Granian's own lines are JSON too"
    (access,) = [e for e in entries if e.get("request_id") == request_id and e["logger"] == "dockyard.access"]
    assert access["route"] == "/v2/{name}/tags/list"
    assert access["status"] == 401 and access["method"] == "GET"
