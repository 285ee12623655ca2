"""GET /v2/<name>/referrers/<digest>: manifests whose subject is that digest."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from dockyard.content.digests import parse_digest
from dockyard.content.manifest_format import OCI_INDEX
from dockyard.registry.access import PULL
from dockyard.registry.context import RegistryContext, call

_MAX_MEDIA_TYPE = 255


async def list_referrers(request: Request, ctx: RegistryContext, name: str, arg: str) -> Response:
    """An OCI image index of the referrers, optionally filtered by artifactType."""
    subject = parse_digest(arg)
    await ctx.access.require(request, name, [PULL])
    artifact_type = request.query_params.get("artifactType") or None
    if artifact_type is not None and not _could_be_media_type(artifact_type):
        # Matches nothing stored, and PostgreSQL refuses text holding NUL: no query at all.
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    else:
        index = await call(ctx.manifests.referrers, name, subject, artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return Response(json.dumps(index).encode(), media_type=OCI_INDEX, headers=headers)


def _could_be_media_type(value: str) -> bool:
    """Media types (RFC 6838) are short printable ASCII."""
    return len(value) <= _MAX_MEDIA_TYPE and value.isascii() and value.isprintable()
