"""`python -m bench.accesslog`: what the access log costs per manifest GET.

Two Dockyards on SQLite, both at log level info (the default), one with `access_log = true` (the default,
one line per request to its log file) and one with `access_log = false`. wrk fetches the small manifest by
tag and by digest at 1 and 8 connections from each in turn, alternating which goes first, ROUNDS times. Each
row gives both requests/s and the server's CPU per request (utime + stime of the whole process tree over the
run, divided by the requests served): on a machine shared with other jobs, the CPU per request moves far less
than the rate does. Both servers and their temp dirs are removed at the end.

First, in this process and with no network: the CPU per request of the request middleware
(`observability/requests.py`: request id, metrics in multiprocess mode, access log) around an app that
answers like a manifest GET, without the middleware, with it and the access log off, and with the access log
on (text format, written to a file): what the lever saves, without the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench import workloads as w
from bench.credentials import Credentials
from bench.procs import interrupt_on_sigterm
from bench.servers import Server, start_dockyard
from dockyard.observability import multiprocess
from dockyard.observability.logs import configure_logging
from dockyard.observability.requests import RequestObserver

VARIANTS = {"on": "true", "off": "false"}
CONNECTIONS = (1, 8)
PATHS = {"by tag": "latest", "by digest": None}


def measure(server: Server, seeded: w.Seeded, reference: str | None, connections: int, seconds: float,
            auth: Credentials) -> w.Measurement:  # fmt: skip
    """wrk GET of the manifest for `seconds`: requests/s, latency and the server's CPU per request."""
    path = f"/v2/{w.SMALL_REPO}/manifests/{reference or seeded.manifest_digest}"
    return w.wrk_workload("GET", lambda _s: path, connections, seconds, auth)(server, seeded)


def _cell(m: w.Measurement) -> str:
    return f"{m.value:,.0f} ({m.details['p50_ms']:.2f} / {m.details['p99_ms']:.2f} ms)"


def _cpu(m: w.Measurement) -> float:
    return float(m.details["cpu_us_per_request"])


def access_lines(server: Server) -> int:
    """How many access log lines the server wrote (each names its route template)."""
    text = server.log.read_text(errors="replace")
    return sum(1 for line in text.splitlines() if "/v2/{name}/manifests/{reference}" in line)


_MANIFEST = b"{" + b" " * 498 + b"}"  # the size of the bench's small manifest, roughly


async def _manifest_app(_scope: Scope, _receive: Receive, send: Send) -> None:
    headers = [(b"content-type", b"application/vnd.oci.image.manifest.v1+json"), (b"content-length", b"500")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _MANIFEST})


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(_message: Message) -> None:
    return None


def _scope(route: Route) -> Scope:
    """What the router leaves in the scope of a manifest GET by tag (the middleware reads it afterwards)."""
    path = "/v2/bench/small/manifests/latest"
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "headers": [(b"host", b"127.0.0.1"), (b"accept", b"application/vnd.oci.image.manifest.v1+json")],
        "client": ("127.0.0.1", 40000),
        "route": route,
        "path_params": {"path": "bench/small/manifests/latest"},
        "state": {"identity": SimpleNamespace(name="admin")},
    }


def _cpu_per_call(app: ASGIApp, route: Route, calls: int) -> float:
    async def many() -> float:
        started = time.process_time()
        for _ in range(calls):
            await app(_scope(route), _receive, _discard)
        return time.process_time() - started

    return asyncio.run(many()) / calls


def in_process(calls: int, repeats: int) -> dict[str, float]:
    """CPU µs per request (the best of `repeats`) without the middleware, with it, and with the access log."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-accesslog-"))
    saved = sys.stderr
    try:
        multiprocess.prepare(workdir / "metrics")
        multiprocess.enable(workdir / "metrics")
        with open(workdir / "access.log", "w") as log_file:
            sys.stderr = log_file  # configure_logging writes to standard error: here, the file
            configure_logging("info", "text")
            sys.stderr = saved
            route = Route("/v2/{path:path}", endpoint=lambda _request: None)
            variants: dict[str, Any] = {
                "no middleware": _manifest_app,
                "middleware, access log off": RequestObserver(_manifest_app, access_log_enabled=False),
                "middleware, access log on": RequestObserver(_manifest_app, access_log_enabled=True),
            }
            best = {name: float("inf") for name in variants}
            for _ in range(repeats):
                for name, app in variants.items():
                    best[name] = min(best[name], 1e6 * _cpu_per_call(app, route, calls))
        return best
    finally:
        sys.stderr = saved
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accesslog", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of every row (default 3)")
    parser.add_argument("--seconds", type=float, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--calls", type=int, default=20_000, help="requests per in-process measurement")
    args = parser.parse_args(argv)
    interrupt_on_sigterm()
    costs = in_process(args.calls, repeats=5)
    print("| in process (no network) | CPU µs per request, best of 5 |")
    print("| --- | ---: |")
    for name, micros in costs.items():
        print(f"| {name} | {micros:.1f} |")
    print(flush=True)
    password = secrets.token_urlsafe(18)
    auth = Credentials("admin", password)
    servers: dict[str, Server] = {}
    rows: list[str] = []
    cpu_deltas: dict[str, list[float]] = {}
    try:
        for name, value in VARIANTS.items():
            env = {"DOCKYARD_LOG_LEVEL": "info", "DOCKYARD_ACCESS_LOG": value}
            servers[name] = start_dockyard(password, env, name=f"access log {name}")
        seeded = {name: w.prepare_small(server, auth) for name, server in servers.items()}
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"load average at the start: {load}", file=sys.stderr, flush=True)
        turn = 0
        for round_number in range(1, args.rounds + 1):
            for title, reference in PATHS.items():
                for connections in CONNECTIONS:
                    turn += 1
                    order = list(VARIANTS) if turn % 2 else list(reversed(VARIANTS))
                    figures = {
                        name: measure(servers[name], seeded[name], reference, connections, args.seconds, auth)
                        for name in order
                    }
                    on, off = figures["on"], figures["off"]
                    label = f"manifest GET {title}, {connections} conn"
                    cpu_deltas.setdefault(label, []).append(_cpu(on) - _cpu(off))
                    row = (
                        f"| {label} | {round_number} | {_cell(on)} | {_cell(off)} "
                        f"| {on.value / off.value:.2f}x | {_cpu(on):.0f} | {_cpu(off):.0f} "
                        f"| {_cpu(on) - _cpu(off):+.0f} |"
                    )
                    print(row, file=sys.stderr, flush=True)
                    rows.append(row)
        lines = access_lines(servers["on"]), access_lines(servers["off"])
    finally:
        for server in servers.values():
            server.stop()
            server.remove()
    print(
        "| workload | round | access log on: requests/s (p50 / p99) | off | on ÷ off "
        "| CPU µs per request, on | off | difference |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    print()
    for label, deltas in cpu_deltas.items():
        print(f"{label}: access log CPU per request, median over rounds {statistics.median(deltas):+.0f} µs")
    print(f"access log lines written for manifest GETs: on {lines[0]:,}, off {lines[1]:,}")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
