"""GET /metrics: Prometheus text format, summed over every worker process, plus totals from the database."""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.db.engine import Database
from dockyard.db.stats import RegistryTotals, registry_totals
from dockyard.observability import multiprocess

log = logging.getLogger(__name__)

# Totals come from aggregate queries; a scrape every few seconds from several Prometheus servers must not
# turn into that many full-table counts.
TOTALS_CACHE_SECONDS = 15.0
_JOB_STATES = ("queued", "running", "done", "failed")


class TotalsCache:
    """Registry totals read from the database at most once per `ttl` seconds in this process."""

    def __init__(self, db: Database, ttl: float = TOTALS_CACHE_SECONDS) -> None:
        self.db = db
        self.ttl = ttl
        self._lock = threading.Lock()
        self._value: RegistryTotals | None = None
        self._at = 0.0

    def get(self) -> RegistryTotals:
        """The totals, fresh or at most `ttl` seconds old."""
        with self._lock:
            now = time.monotonic()
            if self._value is None or now - self._at >= self.ttl:
                with self.db.read() as conn:
                    self._value = registry_totals(conn)
                self._at = now
            return self._value


def totals_families(totals: RegistryTotals) -> list[Metric]:
    """The totals as gauges."""
    blobs = GaugeMetricFamily("dockyard_blobs", "Blobs in the store.", value=totals.blob_count)
    size = GaugeMetricFamily(
        "dockyard_blob_store_bytes", "Bytes of all blobs in the store.", value=totals.blob_bytes
    )
    uploads = GaugeMetricFamily(
        "dockyard_uploads_in_progress",
        "Upload sessions open (started and not yet finished or expired).",
        value=totals.uploads,
    )
    jobs = GaugeMetricFamily(
        "dockyard_jobs", "Background jobs by state (queue depth: queued).", labels=["state"]
    )
    for state in _JOB_STATES:
        jobs.add_metric([state], totals.jobs_by_state.get(state, 0))
    return [blobs, size, uploads, jobs]


class _Exposition:
    """The metric families of one scrape (an object with `collect`, as generate_latest wants)."""

    def __init__(self, totals: Callable[[], RegistryTotals]) -> None:
        self.totals = totals

    def collect(self) -> Iterator[Metric]:
        path = multiprocess.directory()
        if path is not None:
            multiprocess.forget_dead_workers(path)
            yield from MultiProcessCollector(None, str(path)).collect()  # type: ignore[no-untyped-call]
        else:
            yield from REGISTRY.collect()
        try:
            totals = self.totals()
        except Exception as exc:
            # The process metrics are worth having when the database is down; the totals are left out.
            log.warning("metrics: cannot read registry totals: %s", exc)
            return
        yield from totals_families(totals)


def metrics_endpoint(db: Database, token: str | None) -> Callable[[Request], Any]:
    """The GET /metrics handler; with `token`, callers must send `Authorization: Bearer <token>`."""
    exposition = _Exposition(TotalsCache(db).get)
    expected = f"Bearer {token}".encode() if token else None

    async def metrics(request: Request) -> Response:
        if expected is not None:
            sent = request.headers.get("authorization", "").encode("latin-1", "replace")
            if not hmac.compare_digest(sent, expected):
                return JSONResponse(
                    {"error": "unauthorized", "message": "this endpoint needs the metrics bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        body = await run_in_threadpool(generate_latest, exposition)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics
