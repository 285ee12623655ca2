"""The cache node's HTTP surface: blob GET/HEAD by grant, /_ping, and the main registry's keys for caches
below.

Only blobs pass through a cache; manifests are always answered by the main registry, so a tag never resolves
to stale content. A request must carry a grant from the main registry for exactly that blob.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from dockyard.cache.fetch import CacheStats, Fetcher, TransferFailed, UpstreamRefused
from dockyard.cache.grants import GRANT_PARAMETER, GrantInvalid, grant_kid, verify_grant
from dockyard.cache.upstream_keys import UpstreamKeys
from dockyard.content.digests import parse_digest
from dockyard.content.errors import ContentError
from dockyard.content.names import validate_name
from dockyard.registry.errors import error_response
from dockyard.registry.numbers import parse_count
from dockyard.registry.routing import resolve
from dockyard.storage.cache_store import CacheStore
from dockyard.storage.file_stream import stream_file

log = logging.getLogger(__name__)

_OCTETS = "application/octet-stream"
_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
# An upstream that stops sending for this long has failed the transfer.
_UPSTREAM_READ_TIMEOUT = 60.0


@dataclass(frozen=True)
class CacheNodeSettings:
    """What a cache node needs to know."""

    upstream: str
    data_dir: Path
    max_bytes: int
    ttl_seconds: int | None = None
    upstream_ca: Path | None = None


@dataclass
class CacheNode:
    """The node's parts, shared by its requests."""

    settings: CacheNodeSettings
    store: CacheStore
    stats: CacheStats
    keys: UpstreamKeys
    fetcher: Fetcher


def _error(status: int, code: str, message: str) -> Response:
    return error_response(status, code, message, headers=_VERSION)


def _blob_headers(digest: str, size: int) -> dict[str, str]:
    return {
        "Docker-Content-Digest": digest,
        "ETag": f'"{digest}"',
        "Content-Length": str(size),
        "Accept-Ranges": "bytes",
        **_VERSION,
    }


async def blob(request: Request) -> Response:
    """GET or HEAD /v2/<name>/blobs/<digest>?dyg=<grant>."""
    node: CacheNode = request.app.state.node
    target = resolve(request.path_params["path"])
    if target is None or target.kind != "blob":
        return _error(404, "NOT_FOUND", "a cache serves blobs only; ask the registry for anything else")
    try:
        validate_name(target.name)
        digest = str(parse_digest(target.arg))
    except ContentError as exc:
        return _error(400, exc.code, str(exc))
    grant = request.query_params.get(GRANT_PARAMETER)
    await node.keys.ensure(grant_kid(grant) if grant else None)
    try:
        verify_grant(grant, node.keys.get, target.name, digest)
    except GrantInvalid as exc:
        return _error(401 if grant is None else 403, "DENIED" if grant else "UNAUTHORIZED", str(exc))
    assert grant is not None
    cached = node.store.lookup(digest)
    if cached is not None:
        node.stats.hits += 1
        return _serve_file(request, node, digest, cached.path, cached.size)
    if request.method == "HEAD":
        return await _head_upstream(node, target.name, digest, grant)
    try:
        transfer = await node.fetcher.join(target.name, digest, grant)
    except UpstreamRefused as exc:
        return Response(exc.body, status_code=exc.status, media_type="application/json", headers=_VERSION)
    except (httpx.HTTPError, OSError) as exc:
        log.warning("fetching %s from the upstream failed: %s", digest, exc)
        return _error(503, "UNAVAILABLE", "the cache cannot reach its upstream; retry later")
    if "range" in request.headers:
        # A range of a blob still arriving: wait for the whole of it, then answer from the store.
        try:
            async for _ in transfer.read(node.store.path(digest)):
                pass
        except TransferFailed as exc:
            return _error(502, "UNKNOWN", str(exc))
        stored = node.store.lookup(digest)
        if stored is None:
            return _error(503, "UNAVAILABLE", "the blob was evicted at once; the cache is too small")
        return _serve_file(request, node, digest, stored.path, stored.size)
    headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"', **_VERSION}
    if transfer.size is not None:
        headers["Content-Length"] = str(transfer.size)
    return StreamingResponse(
        _counted(node, transfer.read(node.store.path(digest))), headers=headers, media_type=_OCTETS
    )


def _serve_file(request: Request, node: CacheNode, digest: str, path: Path, size: int) -> Response:
    headers = _blob_headers(digest, size)
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers, media_type=_OCTETS)
    if "range" in request.headers:
        del headers["Content-Length"]
        return FileResponse(path, headers=headers, media_type=_OCTETS)
    return StreamingResponse(_counted(node, stream_file(path, size)), headers=headers, media_type=_OCTETS)


async def _counted(node: CacheNode, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        node.stats.bytes_served += len(chunk)
        yield chunk


async def _head_upstream(node: CacheNode, name: str, digest: str, grant: str) -> Response:
    try:
        answer = await node.fetcher.client.head(
            node.fetcher.blob_url(name, digest), params={GRANT_PARAMETER: grant}
        )
    except httpx.HTTPError:
        return _error(503, "UNAVAILABLE", "the cache cannot reach its upstream; retry later")
    if answer.status_code != 200:
        return Response(status_code=answer.status_code, headers=_VERSION)
    size = parse_count(answer.headers.get("content-length", ""))
    if size is None:
        return _error(502, "UNKNOWN", "the upstream did not say the blob's size")
    return Response(status_code=200, headers=_blob_headers(digest, size), media_type=_OCTETS)


async def ping(request: Request) -> Response:
    """GET /_ping: the node is up; its counters and how full it is."""
    node: CacheNode = request.app.state.node
    return JSONResponse(
        {
            "status": "ok",
            "role": "cache",
            "upstream": node.settings.upstream,
            "stored_bytes": node.store.used_bytes,
            "max_bytes": node.store.max_bytes,
            **node.stats.as_dict(),
        }
    )


async def jwks(request: Request) -> Response:
    """GET /auth/jwks.json: the main registry's public keys, for caches that use this one as upstream."""
    node: CacheNode = request.app.state.node
    await node.keys.ensure(None)
    return JSONResponse(node.keys.document, headers={"Cache-Control": "max-age=60"})


def upstream_client(settings: CacheNodeSettings) -> httpx.AsyncClient:
    """The HTTP client for the upstream: its CA trusted when given; no credentials, ever."""
    verify: ssl.SSLContext | bool = True
    if settings.upstream_ca is not None:
        verify = ssl.create_default_context(cafile=str(settings.upstream_ca))
    return httpx.AsyncClient(
        verify=verify,
        timeout=httpx.Timeout(10.0, read=_UPSTREAM_READ_TIMEOUT),
        follow_redirects=False,
    )


def create_cache_app(settings: CacheNodeSettings) -> Starlette:
    """The cache node's application."""
    store = CacheStore(settings.data_dir, settings.max_bytes, settings.ttl_seconds)
    stats = CacheStats()
    client = upstream_client(settings)
    node = CacheNode(
        settings=settings,
        store=store,
        stats=stats,
        keys=UpstreamKeys(settings.upstream, client),
        fetcher=Fetcher(store, settings.upstream, client, stats),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()

    app = Starlette(
        routes=[
            Route("/v2/{path:path}", blob, methods=["GET", "HEAD"]),
            Route("/_ping", ping, methods=["GET", "HEAD"]),
            Route("/auth/jwks.json", jwks, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.node = node
    return app
