"""GET, HEAD, PUT and DELETE /v2/<name>/manifests/<reference>."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.content.digests import Digest
from dockyard.content.errors import ManifestTooLarge, ManifestUnknown, TagInvalid
from dockyard.content.names import parse_reference
from dockyard.registry.access import DELETE, PULL, PUSH, caller
from dockyard.registry.context import RegistryContext, call, read
from dockyard.registry.numbers import content_length


def accepted_types(request: Request) -> set[str]:
    """Media types from every Accept header, whether sent separately or comma-joined."""
    types: set[str] = set()
    for header in request.headers.getlist("accept"):
        for part in header.split(","):
            media_type = part.split(";", 1)[0].strip().lower()
            if media_type:
                types.add(media_type)
    return types


async def get_manifest(request: Request, ctx: RegistryContext, name: str, arg: str) -> Response:
    """The manifest's exact bytes, with its media type and digest; HEAD sends the headers only."""
    try:
        reference = parse_reference(arg)
    except TagInvalid as exc:
        # No manifest can be known by an invalid tag: 404, as the reference registry answers.
        raise ManifestUnknown(f"manifest unknown: {exc.message}") from exc
    await ctx.access.require(request, name, [PULL])
    # A GET is a pull (counted for the dashboard); a HEAD only asks whether it changed.
    fetch = ctx.manifests.pull if request.method == "GET" else ctx.manifests.get
    manifest = await read(ctx, fetch, name, reference)
    accepted = accepted_types(request)
    # Asked by tag for something the client says it cannot read: answer as the reference registry does.
    if (
        isinstance(reference, str)
        and accepted
        and manifest.media_type not in accepted
        and not accepted & {"*/*", "application/*"}
        and "application/json" not in accepted
    ):
        raise ManifestUnknown(
            f"manifest {arg} is a {manifest.media_type}, which the Accept header does not allow"
        )
    headers = {
        "Docker-Content-Digest": manifest.digest,
        "ETag": f'"{manifest.digest}"',
        "Content-Length": str(len(manifest.content)),
    }
    # A HEAD checks for the manifest; only a GET is a pull (audited when configured).
    if request.method == "GET" and ctx.manifests.audit_pulls:
        await call(ctx.manifests.pulled, name, reference, manifest.digest, caller(request))
    body = b"" if request.method == "HEAD" else manifest.content
    return Response(body, status_code=200, headers=headers, media_type=manifest.media_type)


async def _read_limited(request: Request, limit: int) -> bytes:
    length = content_length(request)
    if length is not None and length > limit:
        raise ManifestTooLarge(f"manifest is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ManifestTooLarge(f"manifest is larger than {limit} bytes")
    return bytes(body)


async def put_manifest(request: Request, ctx: RegistryContext, name: str, arg: str) -> Response:
    """Store a manifest after checking that everything it references exists."""
    reference = parse_reference(arg)
    await ctx.access.require(request, name, [PULL, PUSH])
    content = await _read_limited(request, ctx.manifests.max_manifest_bytes)
    result = await call(
        ctx.manifests.put, name, reference, content, request.headers.get("content-type", ""), caller(request)
    )
    headers = {
        "Location": f"/v2/{name}/manifests/{result.digest}",
        "Docker-Content-Digest": result.digest,
        "Content-Length": "0",
    }
    if result.subject:
        headers["OCI-Subject"] = result.subject
    return Response(status_code=201, headers=headers)


async def delete_manifest(request: Request, ctx: RegistryContext, name: str, arg: str) -> Response:
    """By digest: the manifest and its tags. By tag: just the tag."""
    reference = parse_reference(arg)
    await ctx.access.require(request, name, [DELETE])
    await call(ctx.manifests.delete, name, reference, caller(request))
    headers = {"Content-Length": "0"}
    if isinstance(reference, Digest):
        headers["Docker-Content-Digest"] = str(reference)
    return Response(status_code=202, headers=headers)
