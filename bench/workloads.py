"""The measurements, each a function of one server; run.py runs each against both registries."""

from __future__ import annotations

import itertools
import json
import random
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bench.client import OCI_MANIFEST, BlobFile, Connection, ConnectionPool, RegistryError, small_image
from bench.credentials import Credentials
from bench.loadgen import run_wrk
from bench.procs import RssPeak
from bench.servers import Server

MiB = 1 << 20
SMALL_REPO = "bench/small"
SMALL_TAGS = 10
MANIFEST_ACCEPT = f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"


@dataclass
class Measurement:
    """One figure for one server, with details and what the load generator spent meanwhile."""

    value: float
    details: dict[str, float | int | str] = field(default_factory=dict)
    loadgen_cpu_pct: float = 0.0


@dataclass
class Seeded:
    """What the preparation step pushed to a server and the benchmark reads back."""

    manifest_digest: str = ""


class Meter:
    """Wall time, this process's CPU (the Python client) and the server tree's CPU across a block."""

    def __init__(self, server: Server) -> None:
        self._server = server

    def __enter__(self) -> Meter:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        self.server0 = self._server.cpu_seconds()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.client_cpu = time.process_time() - self.cpu0
        self.server_cpu = self._server.cpu_seconds() - self.server0

    @property
    def client_pct(self) -> float:
        return 100 * self.client_cpu / self.wall if self.wall else 0.0


def prepare_small(server: Server, auth: Credentials | None) -> Seeded:
    """A tiny image tagged latest and v1..v9 in one repository, for the request-rate workloads."""
    conn = Connection(server.base, auth)
    try:
        manifest, _, _ = small_image(conn, SMALL_REPO, "small")
        digest = conn.put_manifest(SMALL_REPO, "latest", manifest)
        for index in range(1, SMALL_TAGS):
            conn.put_manifest(SMALL_REPO, f"v{index}", manifest)
    finally:
        conn.close()
    return Seeded(manifest_digest=digest)


def wrk_workload(
    method: str, path: Callable[[Seeded], str], connections: int, seconds: float, auth: Credentials | None
) -> Callable[[Server, Seeded], Measurement]:
    """requests/s with p50/p99 latency from wrk, and the server's CPU per request (with its database's)."""

    def measure(server: Server, seeded: Seeded) -> Measurement:
        headers = {"Accept": MANIFEST_ACCEPT}
        header = auth.header(server.base, path(seeded)) if auth else None
        if header:
            headers["Authorization"] = header
        cpu0 = server.cpu_seconds()
        result = run_wrk(server.base, method, path(seeded), headers, connections, seconds)
        cpu = server.cpu_seconds() - cpu0
        if result.errors:
            raise RuntimeError(f"{server.name}: {result.errors} failed requests under wrk")
        details: dict[str, float | int | str] = {
            "p50_ms": round(result.p50_ms, 3),
            "p99_ms": round(result.p99_ms, 3),
            # Steadier than the rate on a machine shared with other jobs.
            "cpu_us_per_request": round(1e6 * cpu / result.requests, 1) if result.requests else 0.0,
        }
        return Measurement(result.requests_per_s, details, result.loadgen_cpu_pct)

    return measure


def _repeat(budget: float, minimum: int, action: Callable[[], int]) -> tuple[int, int]:
    """Run action at least `minimum` times and until `budget` seconds pass; returns (runs, bytes)."""
    runs = moved = 0
    started = time.perf_counter()
    while runs < minimum or time.perf_counter() - started < budget:
        moved += action()
        runs += 1
    return runs, moved


def push_workload(
    blob: BlobFile, chunk_size: int | None, budget: float, auth: Credentials | None
) -> Callable[[Server, Seeded], Measurement]:
    """Push throughput, MiB/s: monolithic (POST + PUT) or chunked (POST + PATCH ranges + PUT)."""
    repo = "bench/push-chunked" if chunk_size else "bench/push-monolithic"

    def measure(server: Server, _seeded: Seeded) -> Measurement:
        conn = Connection(server.base, auth)
        serials = itertools.count()

        def push() -> int:
            # The blob itself first (the pull workload reads it), then new content every time: pushing
            # bytes a registry already holds is the exception, and can be cheaper.
            serial = next(serials)
            content = blob.variant(serial) if serial else blob
            if chunk_size:
                conn.push_chunked(repo, content, chunk_size)
            else:
                conn.push_monolithic(repo, content)
            return blob.size

        try:
            with Meter(server) as meter:
                runs, moved = _repeat(budget, 1, push)
        finally:
            conn.close()
        details = {"pushes": runs, "cpu_s_per_gb": round(meter.server_cpu / (moved / 1e9), 3)}
        return Measurement(moved / MiB / meter.wall, details, meter.client_pct)

    return measure


def pull_workload(
    blob: BlobFile, budget: float, auth: Credentials | None
) -> Callable[[Server, Seeded], Measurement]:
    """Blob GET throughput, MiB/s, from the blob the monolithic push workload stored."""

    def measure(server: Server, _seeded: Seeded) -> Measurement:
        conn = Connection(server.base, auth)
        try:
            conn.pull("bench/push-monolithic", blob.digest)  # warm the page cache, as a busy registry is
            with Meter(server) as meter:
                runs, moved = _repeat(budget, 2, lambda: conn.pull("bench/push-monolithic", blob.digest))
        finally:
            conn.close()
        if moved != runs * blob.size:
            raise RuntimeError(f"{server.name}: short blob reads")
        return Measurement(moved / MiB / meter.wall, {"pulls": runs}, meter.client_pct)

    return measure


def mixed_workload(
    blobs: dict[str, BlobFile], clients: int, seconds: float, auth: Credentials | None
) -> Callable[[Server, Seeded], Measurement]:
    """16 clients for a bounded time: 75 % pulls, 25 % pushes; 20 % 1 MiB, 70 % 10 MiB, 10 % 100 MiB.

    Pushes go to their own repository: re-pushing a blob that is being pulled from the same repository
    makes the reference answer some pulls with 500 (it rewrites the repository's link file in place).
    """
    pull_repo, push_repo = "bench/mixed-pull", "bench/mixed-push"
    sizes = [blobs["1MiB"], blobs["10MiB"], blobs["100MiB"]]

    def measure(server: Server, _seeded: Seeded) -> Measurement:
        pool = ConnectionPool(server.base, auth)
        setup = pool.get()
        for blob in sizes:
            setup.push_monolithic(pull_repo, blob)
        totals = {"bytes": 0, "pulls": 0, "pushes": 0, "errors": 0}
        latencies: list[float] = []
        lock = threading.Lock()
        deadline = time.perf_counter() + seconds

        def client(seed: int) -> None:
            rng = random.Random(seed)
            conn = pool.get()
            serials = itertools.count(seed << 32)
            while time.perf_counter() < deadline:
                blob = rng.choices(sizes, weights=(20, 70, 10))[0]
                pull = rng.random() < 0.75
                started = time.perf_counter()
                try:
                    if pull:
                        moved = conn.pull(pull_repo, blob.digest)
                    else:
                        conn.push_monolithic(push_repo, blob.variant(next(serials)))
                        moved = blob.size
                except (RegistryError, OSError):
                    with lock:
                        totals["errors"] += 1
                    continue
                with lock:
                    latencies.append(time.perf_counter() - started)
                    totals["bytes"] += moved
                    totals["pulls" if pull else "pushes"] += 1

        try:
            with Meter(server) as meter, ThreadPoolExecutor(clients) as executor:
                for future in [executor.submit(client, seed) for seed in range(clients)]:
                    future.result()
        finally:
            pool.close()
        operations = totals["pulls"] + totals["pushes"]
        return Measurement(
            totals["bytes"] / MiB / meter.wall,
            {
                "operations_per_s": round(operations / meter.wall, 2),
                "pulls": totals["pulls"],
                "pushes": totals["pushes"],
                "errors": totals["errors"],
                "p99_op_s": round(_percentile(latencies, 99), 3),
            },
            meter.client_pct,
        )

    return measure


@dataclass
class ResourceFigures:
    """CPU per GB each way and peak RSS, from one push and two pulls of the largest blob."""

    push_cpu_per_gb: float
    pull_cpu_per_gb: float
    peak_pss_mib: float
    peak_rss_mib: float
    loadgen_cpu_pct: float


def measure_resources(server: Server, blob: BlobFile, auth: Credentials | None) -> ResourceFigures:
    conn = Connection(server.base, auth)
    gigabytes = blob.size / 1e9
    try:
        with RssPeak(server.pid) as rss:
            with Meter(server) as push:
                conn.push_monolithic("bench/resources", blob)
            with Meter(server) as pull:
                for _ in range(2):
                    conn.pull("bench/resources", blob.digest)
    finally:
        conn.close()
    client_pct = 100 * (push.client_cpu + pull.client_cpu) / (push.wall + pull.wall)
    return ResourceFigures(
        push_cpu_per_gb=push.server_cpu / gigabytes,
        pull_cpu_per_gb=pull.server_cpu / (2 * gigabytes),
        peak_pss_mib=rss.peak_pss / MiB,
        peak_rss_mib=rss.peak_rss / MiB,
        loadgen_cpu_pct=client_pct,
    )


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


def _run_all(workers: int, action: Callable[[int], object], count: int) -> None:
    """action(0..count-1) on a thread pool; on the first failure or an interrupt, queued calls are dropped."""
    executor = ThreadPoolExecutor(workers)
    try:
        for future in [executor.submit(action, index) for index in range(count)]:
            future.result()
    finally:
        executor.shutdown(cancel_futures=True)


def seed_tags(server: Server, auth: Credentials | None, repo: str, count: int, workers: int = 16) -> float:
    """`count` tags on one small manifest, pushed through the API; returns seconds taken."""
    pool = ConnectionPool(server.base, auth)
    try:
        conn = pool.get()
        manifest, _, _ = small_image(conn, repo, "tags")
        started = time.perf_counter()
        _run_all(workers, lambda i: pool.get().put_manifest(repo, f"t{i:06d}", manifest), count)
        return time.perf_counter() - started
    finally:
        pool.close()


def seed_repositories(
    server: Server, auth: Credentials | None, prefix: str, count: int, workers: int = 16
) -> float:
    """`count` repositories, each a manifest over blobs mounted from one source; returns seconds taken."""
    pool = ConnectionPool(server.base, auth)
    source = f"{prefix}/source"
    try:
        manifest, config, layer = small_image(pool.get(), source, "catalog")

        def one(index: int) -> None:
            conn, repo = pool.get(), f"{prefix}/r{index:05d}"
            conn.mount(repo, config, source)
            conn.mount(repo, layer, source)
            conn.put_manifest(repo, "latest", manifest)

        started = time.perf_counter()
        _run_all(workers, one, count)
        return time.perf_counter() - started
    finally:
        pool.close()


def walk_pages(
    server: Server, auth: Credentials | None, first: str, page_size: int, budget: float, min_samples: int
) -> Measurement:
    """GET every page, following Link, again and again until the budget ends; p99 per page in ms."""
    conn = Connection(server.base, auth)
    latencies: list[float] = []
    items_per_page: list[int] = []
    started = time.perf_counter()
    cpu0 = time.process_time()
    try:
        while True:
            path: str | None = f"{first}?n={page_size}"
            while path:
                t0 = time.perf_counter()
                raw, link = conn.get_body(path)
                latencies.append(time.perf_counter() - t0)
                body = json.loads(raw)
                listed = body.get("tags") or body.get("repositories") or []
                items_per_page.append(len(listed))
                path = link.split(";", 1)[0].strip("<> ") if link else None
                if time.perf_counter() - started > budget and len(latencies) >= min_samples:
                    break
            else:
                continue
            break
    finally:
        conn.close()
    wall = time.perf_counter() - started
    return Measurement(
        _percentile(latencies, 99) * 1000,
        {
            "p50_ms": round(_percentile(latencies, 50) * 1000, 3),
            "pages": len(latencies),
            "max_items_per_page": max(items_per_page),
        },
        100 * (time.process_time() - cpu0) / wall if wall else 0.0,
    )
