"""The instruments, and the functions the rest of Dockyard calls to report events.

Stable API for other modules (each call is cheap and never raises):

    login_failed()                     a wrong password, token or unknown account
    login_throttled()                  an attempt refused by the login throttle (429)
    write_skipped(what)                a best-effort write left out: the database took no writes
    transaction_retried(outcome)       a write transaction cut by a failover, run again (or given up)
    gc_finished(bytes_freed, ok)       one run of the garbage collector
    job_finished(kind, seconds, ok)    one run of a background job (scans are kind "scan")

No label ever holds a repository name, digest, tag, user or address: labels take values from small
fixed sets (route templates, methods, status codes, job kinds), so the number of series stays bounded.

In `dockyard serve` every worker process writes its values to memory-mapped files in a private
directory (prometheus-client's multiprocess mode, see `multiprocess`); a scrape adds them up.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

# Seconds. Manifest and tag requests take milliseconds; blob transfers and pushes take seconds to minutes.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_JOB_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Instruments:
    """Every metric this process updates. Built once per process, after the multiprocess mode is chosen."""

    def __init__(self) -> None:
        # Its _count series is the number of requests: no separate counter to update on every request.
        self.latency = Histogram(
            "dockyard_http_request_duration_seconds",
            "Requests answered, and the time from each one's arrival to the end of its answer.",
            ("method", "route", "status"),
            buckets=_LATENCY_BUCKETS,
        )
        self.bytes_in = Counter(
            "dockyard_http_request_bytes", "Bytes of request bodies received.", ("route",)
        )
        self.bytes_out = Counter("dockyard_http_response_bytes", "Bytes of response bodies sent.", ("route",))
        self.gc_runs = Counter("dockyard_gc_runs", "Garbage collector runs.", ("outcome",))
        self.gc_freed = Counter("dockyard_gc_freed_bytes", "Bytes the garbage collector removed.")
        self.job_runs = Histogram(
            "dockyard_job_duration_seconds",
            "Duration of background jobs (vulnerability scans are kind 'scan').",
            ("kind", "outcome"),
            buckets=_JOB_BUCKETS,
        )
        self.job_failures = Counter("dockyard_job_failures", "Background job runs that failed.", ("kind",))
        self.login_failures = Counter(
            "dockyard_login_failures", "Failed logins (wrong or unknown credentials)."
        )
        self.login_throttled = Counter(
            "dockyard_login_throttled", "Login attempts refused by the throttle before checking them."
        )
        self.writes_skipped = Counter(
            "dockyard_db_writes_skipped",
            "Best-effort writes left out because the database took no writes (no quorum).",
            ("what",),
        )
        self.transaction_retries = Counter(
            "dockyard_db_transaction_retries",
            "Write transactions cut by a failover and run again ('retried'), or given up ('gave_up').",
            ("outcome",),
        )
        # Sampled by each worker every few seconds (see dockyard.app); the live workers' values are summed.
        self.db_pool_in_use = Gauge(
            "dockyard_db_pool_connections_in_use",
            "Database connections checked out of the pools.",
            multiprocess_mode="livesum",
        )
        self.db_pool_size = Gauge(
            "dockyard_db_pool_connections",
            "Database connections open in the pools.",
            multiprocess_mode="livesum",
        )


@functools.cache
def instruments() -> Instruments:
    """This process's instruments."""
    return Instruments()


def login_failed() -> None:
    """Count one failed login."""
    _safely(lambda: instruments().login_failures.inc())


def login_throttled() -> None:
    """Count one login attempt the throttle refused."""
    _safely(lambda: instruments().login_throttled.inc())


def write_skipped(what: str) -> None:
    """Count one best-effort write left out without quorum; `what` is from a fixed set (audit,
    login_throttle, last_used, password_rehash, refresh_token, upload_writers)."""
    _safely(lambda: instruments().writes_skipped.labels(what).inc())


def transaction_retried(outcome: str) -> None:
    """Count a write transaction run again after a failover ('retried') or given up ('gave_up')."""
    _safely(lambda: instruments().transaction_retries.labels(outcome).inc())


def gc_finished(bytes_freed: int, ok: bool = True) -> None:
    """Count one garbage collector run and what it freed."""

    def report() -> None:
        found = instruments()
        found.gc_runs.labels("ok" if ok else "failed").inc()
        if bytes_freed > 0:
            found.gc_freed.inc(bytes_freed)

    _safely(report)


def job_finished(kind: str, seconds: float, ok: bool) -> None:
    """Record one background job run; `kind` must come from the registered handlers (a fixed set)."""

    def report() -> None:
        found = instruments()
        found.job_runs.labels(kind, "ok" if ok else "failed").observe(seconds)
        if not ok:
            found.job_failures.labels(kind).inc()

    _safely(report)


def _safely(action: Callable[[], object]) -> None:
    # A metric must never break what it measures (a full disk under the metrics directory, say).
    try:
        action()
    except Exception:
        log.debug("could not update a metric", exc_info=True)
