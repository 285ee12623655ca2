"""GET, HEAD and DELETE /v2/<name>/blobs/<digest>."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from dockyard.cache.grants import GRANT_PARAMETER
from dockyard.content.digests import parse_digest
from dockyard.registry.access import DELETE, PULL
from dockyard.registry.byte_ranges import RangeNotSatisfiable, requested_range
from dockyard.registry.context import RegistryContext, call, read
from dockyard.registry.errors import error_response
from dockyard.storage.file_stream import stream_file

_OCTETS = "application/octet-stream"


async def get_blob(request: Request, ctx: RegistryContext, name: str, arg: str) -> Response:
    """Send a blob's bytes (a Range answered with 206), or redirect to where they are."""
    digest = str(parse_digest(arg))
    grant = request.query_params.get(GRANT_PARAMETER)
    if grant is None:
        await ctx.access.require(request, name, [PULL])
    elif ctx.caches is None or not ctx.caches.accepts(grant, name, digest):
        # A cache fetching on a user's behalf: the grant opens this one blob, and nothing else.
        return error_response(403, "DENIED", "the cache grant is invalid, expired or for another blob")
    location = await read(ctx, ctx.blobs.locate, name, digest)
    etag = f'"{digest}"'
    headers = {"Docker-Content-Digest": digest, "ETag": etag, "Cache-Control": "max-age=31536000"}
    if grant is None and request.method == "GET" and ctx.caches is not None:
        cache_url = await read(
            ctx, ctx.caches.location, getattr(request.state, "identity", None), name, digest
        )
        if cache_url is not None:
            return _redirect(cache_url, headers)
    if location.redirect_url and request.method == "GET" and grant is None:
        # Only GETs: a presigned URL is signed for GET, and a HEAD is answered from the record anyway. Not
        # for a cache's fetch: cache nodes do not follow redirects.
        return _redirect(location.redirect_url, headers)
    headers["Accept-Ranges"] = "bytes"
    if request.method == "HEAD":
        headers["Content-Length"] = str(location.size)
        return Response(status_code=200, headers=headers, media_type=_OCTETS)
    try:
        wanted = requested_range(
            request.headers.get("range"), location.size, request.headers.get("if-range"), etag
        )
    except RangeNotSatisfiable as exc:
        headers["Content-Range"] = f"bytes */{location.size}"
        return error_response(416, "RANGE_INVALID", f"range not satisfiable: {exc}", headers=headers)
    if wanted is not None:
        headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{location.size}"
        headers["Content-Length"] = str(wanted.length)
        body = await read(ctx, ctx.blobs.store.read, digest, wanted.start, wanted.length)
        return StreamingResponse(body, status_code=206, headers=headers, media_type=_OCTETS)
    headers["Content-Length"] = str(location.size)
    if location.local_file is not None:
        return StreamingResponse(
            stream_file(location.local_file, location.size), headers=headers, media_type=_OCTETS
        )
    body = await read(ctx, ctx.blobs.store.read, digest)
    return StreamingResponse(body, headers=headers, media_type=_OCTETS)


def _redirect(url: str, headers: dict[str, str]) -> Response:
    """A 307 to a URL carrying a short-lived grant or signature: never cached, as the blob's year-long
    max-age would let it be."""
    return RedirectResponse(url, status_code=307, headers={**headers, "Cache-Control": "no-store"})


async def delete_blob(request: Request, ctx: RegistryContext, name: str, arg: str) -> Response:
    """Unlink a blob from the repository."""
    digest = str(parse_digest(arg))
    await ctx.access.require(request, name, [DELETE])
    await call(ctx.blobs.unlink, name, digest)
    return Response(status_code=202, headers={"Docker-Content-Digest": digest, "Content-Length": "0"})
