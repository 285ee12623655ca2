"""GET, HEAD and DELETE /v2/<name>/blobs/<digest>."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from dockyard.content.digests import parse_digest
from dockyard.registry.access import DELETE, PULL
from dockyard.registry.context import RegistryContext, call, read

_OCTETS = "application/octet-stream"


class _BlobFileResponse(FileResponse):
    """A FileResponse that reads the file itself, 4 MiB at a time, even when the server offers pathsend.

    Measured (docs/benchmarks.md): Granian sends a path it is handed at about 0.7x the reference
    registry's speed, while reading in a thread overlaps each read with the send of the chunk before.
    """

    chunk_size = 4 << 20

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = {k: v for k, v in scope.get("extensions", {}).items() if k != "http.response.pathsend"}
        await super().__call__({**scope, "extensions": extensions}, receive, send)


async def get_blob(request: Request, ctx: RegistryContext, name: str, arg: str) -> Response:
    """Send a blob's bytes (Range requests answered with 206), or redirect to where they are."""
    digest = str(parse_digest(arg))
    await ctx.access.require(request, name, [PULL])
    location = await read(ctx, ctx.blobs.locate, name, digest)
    headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"', "Cache-Control": "max-age=31536000"}
    if location.redirect_url:
        return RedirectResponse(location.redirect_url, status_code=307, headers=headers)
    if request.method == "HEAD":
        headers.update({"Content-Length": str(location.size), "Accept-Ranges": "bytes"})
        return Response(status_code=200, headers=headers, media_type=_OCTETS)
    if location.local_file is not None:
        return _BlobFileResponse(location.local_file, headers=headers, media_type=_OCTETS)
    headers["Content-Length"] = str(location.size)
    return StreamingResponse(ctx.blobs.store.read(digest), headers=headers, media_type=_OCTETS)


async def delete_blob(request: Request, ctx: RegistryContext, name: str, arg: str) -> Response:
    """Unlink a blob from the repository."""
    digest = str(parse_digest(arg))
    await ctx.access.require(request, name, [DELETE])
    await call(ctx.blobs.unlink, name, digest)
    return Response(status_code=202, headers={"Docker-Content-Digest": digest, "Content-Length": "0"})
