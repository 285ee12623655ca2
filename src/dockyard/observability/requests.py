"""Per request: an id (returned in `X-Request-ID`), metrics by route template, and one access log line.

A pure ASGI middleware, so the hot path is a few attribute reads and counter increments: no Request
object, no copying of bodies.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.observability.metrics import Instruments, instruments

access_log = logging.getLogger("dockyard.access")
REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode()
# A caller-chosen id is kept only when a trusted proxy sets it, and only in this shape: it goes into logs.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_LOGGED_PATH = 512
_ACCESS_LINE = '%s "%s %s" %d %d %.1fms route=%s user=%s id=%s'
# /v2/ is one route with the path as a parameter; its resources, as templates (never a name or digest).
_REGISTRY_TEMPLATES = {
    "blob": "/v2/{name}/blobs/{digest}",
    "uploads": "/v2/{name}/blobs/uploads/",
    "upload": "/v2/{name}/blobs/uploads/{id}",
    "manifest": "/v2/{name}/manifests/{reference}",
    "tags": "/v2/{name}/tags/list",
    "catalog": "/v2/_catalog",
    "referrers": "/v2/{name}/referrers/{digest}",
}
UNMATCHED = "unmatched"

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def route_template(scope: Scope) -> str:
    """The matched route's template, e.g. `/v2/{name}/manifests/{reference}`; `unmatched` when none."""
    route = scope.get("route")
    if not isinstance(route, Route) or isinstance(route, Mount):
        return UNMATCHED
    if route.path == "/v2/{path:path}":
        kind = registry_kind(scope.get("path_params", {}).get("path", ""))
        return _REGISTRY_TEMPLATES[kind] if kind is not None else UNMATCHED
    # Inside a mounted application (the API), root_path holds the mount's prefix.
    return f"{scope.get('root_path', '')}{route.path}"


def registry_kind(path: str) -> str | None:
    """The kind of resource a /v2/ path names, as `registry.routing.resolve` finds it, by splitting the
    last segments instead of trying each route's pattern (a few string operations per request)."""
    if path in {"_catalog", "_catalog/"}:
        return "catalog"
    head, _, last = path.rpartition("/")
    name, _, kind = head.rpartition("/")
    if not name or "\n" in path:
        return None
    if kind == "uploads" and name.endswith("/blobs") and name != "/blobs":
        return "upload" if last else "uploads"
    if kind == "blobs" and last:
        return "uploads" if last == "uploads" else "blob"
    if kind == "manifests" and last:
        return "manifest"
    if kind == "referrers" and last:
        return "referrers"
    if kind == "tags" and last == "list":
        return "tags"
    return None


def new_request_id() -> str:
    """A fresh request id: 128 random bits in hex."""
    return os.urandom(16).hex()


def incoming_request_id(scope: Scope) -> str | None:
    """The request's own `X-Request-ID`, if it has exactly one and it is well-formed."""
    found = [value for key, value in scope["headers"] if key == _HEADER_KEY]
    if len(found) != 1:
        return None
    value = found[0].decode("latin-1")
    return value if _REQUEST_ID.fullmatch(value) else None


class RequestObserver:
    """Wraps the application: request id, metrics and access log for every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        trust_request_id: bool = False,
        access_log_enabled: bool = True,
        template_of: Callable[[Scope], str] = route_template,
    ) -> None:
        self.app = app
        self.trust_request_id = trust_request_id
        self.access_log_enabled = access_log_enabled
        self.template_of = template_of
        self.metrics: Instruments = instruments()
        # (method, route, status) -> latency histogram; labels() takes a lock and builds a key each time.
        self._series: dict[tuple[str, str, int], Any] = {}
        self._bytes: dict[str, tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = (self.trust_request_id and incoming_request_id(scope)) or new_request_id()
        token = current_request_id.set(request_id)
        header = (_HEADER_KEY, request_id.encode())
        status = 500
        received = 0
        sent = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def observing_send(message: Message) -> None:
            nonlocal status, sent
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                # A new list: a response object may reuse its own header list.
                message["headers"] = [*message.get("headers", ()), header]
            elif kind == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, observing_send)
        finally:
            seconds = time.perf_counter() - started
            current_request_id.reset(token)
            self._record(scope, status, received, sent, seconds, request_id)

    def _record(
        self, scope: Scope, status: int, received: int, sent: int, seconds: float, request_id: str
    ) -> None:
        try:
            route = self.template_of(scope)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            series = self._series.get((method, route, status))
            if series is None:
                series = self.metrics.latency.labels(method, route, str(status))
                self._series[(method, route, status)] = series
            series.observe(seconds)
            byte_series = self._bytes.get(route)
            if byte_series is None:
                byte_series = (self.metrics.bytes_in.labels(route), self.metrics.bytes_out.labels(route))
                self._bytes[route] = byte_series
            if received:
                byte_series[0].inc(received)
            if sent:
                byte_series[1].inc(sent)
        except Exception:
            # Never let a metric fail a request that has already been answered.
            access_log.debug("could not record request metrics", exc_info=True)
            route = UNMATCHED
        if self.access_log_enabled and access_log.isEnabledFor(logging.INFO):
            self._log(scope, route, status, received, sent, seconds, request_id)

    @staticmethod
    def _log(
        scope: Scope, route: str, status: int, received: int, sent: int, seconds: float, request_id: str
    ) -> None:
        raw = scope.get("raw_path") or scope["path"].encode()
        # The path as sent (still percent-encoded, so no line breaks), cut to a bounded length.
        path = raw[:_MAX_LOGGED_PATH].decode("latin-1")
        identity = (scope.get("state") or {}).get("identity")
        user = getattr(identity, "name", None) or "-"
        client = scope.get("client")
        fields = {
            "method": scope["method"],
            "path": path,
            "route": route,
            "status": status,
            "bytes_in": received,
            "bytes_out": sent,
            "duration_ms": round(seconds * 1000, 3),
            "user": user,
            "client": client[0] if client else "-",
            "request_id": request_id,
        }
        args = (fields["client"], scope["method"], path, status, sent, seconds * 1e3, route, user, request_id)
        # makeRecord + handle is what info() does, less the walk up the stack for the caller's line.
        record = access_log.makeRecord(
            access_log.name, logging.INFO, __file__, 0, _ACCESS_LINE, args, None, extra={"access": fields}
        )
        access_log.handle(record)
