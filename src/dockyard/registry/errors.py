"""OCI error bodies, and the HTTP status each domain failure maps to."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from dockyard.content import errors as e

_STATUS: dict[type[e.ContentError], int] = {
    e.BlobUnknown: 404,
    e.BlobUploadInvalid: 400,
    e.BlobUploadUnknown: 404,
    e.DigestInvalid: 400,
    e.ManifestBlobUnknown: 400,
    e.ManifestInvalid: 400,
    e.ManifestTooLarge: 413,
    e.ManifestUnknown: 404,
    e.ManifestReferenced: 409,
    e.NameInvalid: 400,
    e.NameUnknown: 404,
    e.SizeInvalid: 400,
    e.TagInvalid: 400,
    e.RangeInvalid: 416,
    e.PaginationInvalid: 400,
    e.Unsupported: 415,
}


def error_response(
    status: int, code: str, message: str, detail: Any = None, headers: Mapping[str, str] | None = None
) -> Response:
    """The JSON body the specification defines: {"errors": [{"code", "message", "detail"}]}."""
    item: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        item["detail"] = detail
    body = json.dumps({"errors": [item]}).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def content_error_response(
    exc: e.ContentError, name: str | None = None, upload_id: str | None = None
) -> Response:
    """Render a domain failure with its status; a bad chunk also says where the upload stands."""
    status = next((s for cls, s in _STATUS.items() if type(exc) is cls), None)
    if status is None:
        status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 500)
    headers: dict[str, str] = {}
    if isinstance(exc, e.RangeInvalid) and name and upload_id:
        headers["Location"] = f"/v2/{name}/blobs/uploads/{upload_id}"
        headers["Range"] = f"0-{max(exc.current_size - 1, 0)}"
        headers["Docker-Upload-UUID"] = upload_id
    return error_response(status, exc.code, exc.message, exc.detail, headers)
