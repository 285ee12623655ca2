"""Blob uploads: POST (session, monolithic, mount), PATCH, PUT, GET status and DELETE."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from dockyard.content.digests import Digest, parse_digest
from dockyard.content.errors import DigestInvalid, SizeInvalid
from dockyard.content.names import validate_name
from dockyard.content.uploads import Appender
from dockyard.memory import large_transfer
from dockyard.registry.access import PULL, PUSH
from dockyard.registry.context import RegistryContext, call
from dockyard.registry.numbers import content_length, parse_count

# Batches amortise the hop to a worker thread; bounded, so memory stays flat whatever the blob size.
_WRITE_BATCH = 1 << 20
# ASCII digits only (\d would take any Unicode digit); their values are checked by parse_count.
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?([0-9]+)-([0-9]+)")


def _session_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
        "Content-Length": "0",
    }


def _blob_created(name: str, digest: Digest | str) -> Response:
    return Response(
        status_code=201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": str(digest),
            "Content-Length": "0",
        },
    )


def _has_body(request: Request) -> bool:
    length = content_length(request)
    if length is not None:
        return length != 0
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


def _content_range(request: Request) -> tuple[int, int] | None:
    value = request.headers.get("content-range")
    if value is None:
        return None
    match = _CONTENT_RANGE.fullmatch(value.strip(" \t"))
    start, end = (parse_count(match[1]), parse_count(match[2])) if match else (None, None)
    if start is None or end is None or end < start:
        raise SizeInvalid(f"invalid Content-Range {value[:100]!r}: expected START-END")
    return start, end


async def _stream(
    request: Request, ctx: RegistryContext, name: str, upload_id: str, digest: Digest | None = None
) -> int:
    """Append the request body to the session; returns the session's new size.

    With `digest`, the body ends the upload: the blob is verified and committed with it.
    """
    chunk_range = _content_range(request)
    appender: Appender = await call(
        ctx.uploads.append, name, upload_id, chunk_range[0] if chunk_range else None
    )
    try:
        pending = bytearray()
        with large_transfer():
            async for chunk in request.stream():
                pending += chunk
                if len(pending) >= _WRITE_BATCH:
                    batch, pending = bytes(pending), bytearray()
                    await call(appender.write, batch)
            if pending:
                await call(appender.write, bytes(pending))
        if chunk_range and appender.size - appender.start != chunk_range[1] - chunk_range[0] + 1:
            raise SizeInvalid("the chunk's length does not match its Content-Range")
    except BaseException:
        # Disconnects and cancellations too (so no await here): the session stays at its recorded size.
        appender.abort()
        raise
    if digest is not None:
        return await call(appender.complete, digest)
    return await call(appender.finish)


async def start_upload(request: Request, ctx: RegistryContext, name: str, _arg: str) -> Response:
    """Open a session; or take the whole blob now (?digest=); or mount it from another repository."""
    params = request.query_params
    mount, source = params.get("mount"), params.get("from")
    wanted = (
        (parse_digest(mount), validate_name(source)) if mount is not None and source is not None else None
    )
    # A mount's challenge asks for pull on the source too: a client that requests exactly the challenged
    # scopes gets one token for the whole mount.
    extra = [f"repository:{wanted[1]}:{PULL}"] if wanted and wanted[1] != name else []
    await ctx.access.require(request, name, [PULL, PUSH], extra)
    if wanted is not None:
        digest, origin = wanted
        # Mount only what the caller could pull anyway; otherwise fall back to a normal upload.
        try:
            await ctx.access.require(request, origin, [PULL])
            mounted = await call(ctx.blobs.mount, name, str(digest), origin) is not None
        except Exception:
            mounted = False
        if mounted:
            return _blob_created(name, digest)
    # Validate before opening the session: a rejected request must not leave one behind.
    whole = parse_digest(params["digest"]) if "digest" in params else None
    status = await call(ctx.uploads.start, name)
    if whole is not None:
        await _stream(request, ctx, name, status.id, whole)
        return _blob_created(name, whole)
    return Response(status_code=202, headers=_session_headers(name, status.id, 0))


async def upload_status(request: Request, ctx: RegistryContext, name: str, upload_id: str) -> Response:
    """Where a session stands."""
    await ctx.access.require(request, name, [PUSH])
    status = await call(ctx.uploads.status, name, upload_id)
    return Response(status_code=204, headers=_session_headers(name, upload_id, status.size))


async def append_chunk(request: Request, ctx: RegistryContext, name: str, upload_id: str) -> Response:
    """PATCH: a chunk, or the whole body streamed."""
    await ctx.access.require(request, name, [PUSH])
    size = await _stream(request, ctx, name, upload_id)
    return Response(status_code=202, headers=_session_headers(name, upload_id, size))


async def finish_upload(request: Request, ctx: RegistryContext, name: str, upload_id: str) -> Response:
    """PUT ?digest=: optionally a last chunk, then verify and commit."""
    await ctx.access.require(request, name, [PUSH])
    if "digest" not in request.query_params:
        raise DigestInvalid("the digest query parameter is required to complete an upload")
    digest = parse_digest(request.query_params["digest"])
    if _has_body(request):
        await _stream(request, ctx, name, upload_id, digest)
    else:
        await call(ctx.uploads.complete, name, upload_id, digest)
    return _blob_created(name, digest)


async def cancel_upload(request: Request, ctx: RegistryContext, name: str, upload_id: str) -> Response:
    """DELETE: abandon a session."""
    await ctx.access.require(request, name, [PUSH])
    await call(ctx.uploads.cancel, name, upload_id)
    return Response(status_code=204, headers={"Content-Length": "0"})
