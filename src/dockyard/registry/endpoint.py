"""The /v2/ dispatcher: resolves the path, validates the name, calls the handler, renders every failure."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import request_response
from starlette.types import Receive, Scope, Send

from dockyard.content.errors import ContentError, NameInvalid
from dockyard.content.names import validate_name
from dockyard.db.engine import DatabaseFull, DatabaseReadOnly, DatabaseUnavailable
from dockyard.registry import blobs, listing, manifests, referrers, uploads
from dockyard.registry.access import AccessDenied, AuthenticationRequired, TooManyRequests
from dockyard.registry.context import RegistryContext
from dockyard.registry.errors import content_error_response, error_response
from dockyard.registry.numbers import content_length
from dockyard.registry.routing import resolve
from dockyard.storage.driver import StorageError, StorageFull

log = logging.getLogger(__name__)

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}

Handler = Callable[[Request, RegistryContext, str, str], Awaitable[Response]]

_HANDLERS: dict[str, dict[str, Handler]] = {
    "blob": {"GET": blobs.get_blob, "HEAD": blobs.get_blob, "DELETE": blobs.delete_blob},
    "uploads": {"POST": uploads.start_upload},
    "upload": {
        "GET": uploads.upload_status,
        "PATCH": uploads.append_chunk,
        "PUT": uploads.finish_upload,
        "DELETE": uploads.cancel_upload,
    },
    "manifest": {
        "GET": manifests.get_manifest,
        "HEAD": manifests.get_manifest,
        "PUT": manifests.put_manifest,
        "DELETE": manifests.delete_manifest,
    },
    "tags": {"GET": listing.list_tags},
    "catalog": {"GET": listing.catalog},
    "referrers": {"GET": referrers.list_referrers},
}


def _with_version(response: Response) -> Response:
    response.headers.update(API_VERSION_HEADER)
    return response


_BASE_ALLOW = {"Allow": "GET, HEAD"}


class AnyMethod:
    """An endpoint as an ASGI app, so that its route takes every method and the endpoint answers each
    (a route's method list would leave the others to the next route that matches: the web UI)."""

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.app = request_response(endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request."""
        await self.app(scope, receive, send)


async def base(request: Request) -> Response:
    """GET /v2/: the API version check, which is also where clients learn how to authenticate."""
    ctx: RegistryContext = request.app.state.registry
    if request.method not in {"GET", "HEAD"}:
        return _with_version(
            error_response(405, "UNSUPPORTED", f"{request.method} is not supported here", headers=_BASE_ALLOW)
        )
    try:
        await ctx.access.require(request, None, [])
    except AuthenticationRequired as exc:
        return _with_version(_unauthorized(exc))
    except AccessDenied as exc:
        return _with_version(error_response(403, "DENIED", str(exc) or "access to the resource is denied"))
    except TooManyRequests as exc:
        return _with_version(_too_many(exc))
    return _with_version(JSONResponse({}))


def _too_many(exc: TooManyRequests) -> Response:
    return error_response(429, "TOOMANYREQUESTS", str(exc), headers={"Retry-After": str(exc.retry_after)})


def _unauthorized(exc: AuthenticationRequired) -> Response:
    return error_response(401, "UNAUTHORIZED", str(exc), headers={"WWW-Authenticate": exc.challenge})


async def dispatch(request: Request) -> Response:
    """Every /v2/<...> request."""
    return _with_version(await _dispatch(request))


async def _dispatch(request: Request) -> Response:
    ctx: RegistryContext = request.app.state.registry
    # The whole path, not the route's parameter: Starlette's pattern ends in `$`, which drops a
    # trailing newline (`v1%0A` would become the tag `v1`).
    target = resolve(request.scope["path"].removeprefix("/v2/"))
    if target is None:
        return error_response(404, "NOT_FOUND", "no such endpoint")
    handler = _HANDLERS[target.kind].get(request.method)
    if handler is None:
        allow = _allowed_methods(request.scope["path"])
        return error_response(
            405, "UNSUPPORTED", f"{request.method} is not supported here", headers={"Allow": allow}
        )
    upload_id = target.arg if target.kind == "upload" else None
    try:
        content_length(request)  # a malformed Content-Length is refused before anything is read
        if target.kind != "catalog":
            # The path arrives percent-decoded: `a%2Fb` would pass as the name `a/b`. No repository name,
            # tag, digest or upload id holds a slash, so an encoded one in the path is never valid.
            if b"%2f" in request.scope.get("raw_path", b"").lower():
                raise NameInvalid(f"repository name {target.name!r} is invalid: an encoded slash (%2F)")
            validate_name(target.name)
        return await handler(request, ctx, target.name, target.arg)
    except ContentError as exc:
        return content_error_response(exc, target.name, upload_id)
    except AuthenticationRequired as exc:
        return _unauthorized(exc)
    except AccessDenied as exc:
        return error_response(403, "DENIED", str(exc) or "access to the resource is denied")
    except TooManyRequests as exc:
        return _too_many(exc)
    except ClientDisconnect:
        return error_response(400, "BLOB_UPLOAD_INVALID", "the client went away before the body ended")
    except DatabaseReadOnly as exc:
        return error_response(503, "UNAVAILABLE", str(exc), headers={"Retry-After": "10"})
    except (StorageFull, DatabaseFull) as exc:
        # 507, as HTTP names it; clients treat it as any server error (retry, then report the message).
        log.error("no space left: %s", exc)
        return error_response(
            507, "UNKNOWN", "the registry has no storage space left; retry once space is freed"
        )
    except DatabaseUnavailable as exc:
        log.warning("database unavailable: %s", exc)
        return error_response(503, "UNAVAILABLE", "the metadata database is unavailable; retry later")
    except StorageError as exc:
        log.error("storage failure: %s", exc)
        return error_response(503, "UNAVAILABLE", "blob storage is unavailable; retry later")
    except Exception:
        log.exception("unexpected failure on %s %s", request.method, request.url.path)
        return error_response(500, "UNKNOWN", "internal error; the server log has details")


# Codes for the statuses the web framework itself answers with (unknown route, method, bad request...).
_FRAMEWORK_CODES = {404: "NOT_FOUND", 405: "UNSUPPORTED", 413: "SIZE_INVALID", 416: "RANGE_INVALID"}


def is_registry_path(path: str) -> bool:
    """Whether a request path belongs to the /v2/ surface."""
    return path == "/v2" or path.startswith("/v2/")


async def framework_error(request: Request, exc: Exception) -> Response:
    """An error the framework raised before a handler ran: in OCI JSON on /v2/, as Starlette's elsewhere."""
    assert isinstance(exc, HTTPException)
    if not is_registry_path(request.scope["path"]):
        if exc.status_code in {204, 304}:
            return Response(status_code=exc.status_code, headers=exc.headers)
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
    code = _FRAMEWORK_CODES.get(exc.status_code, "UNSUPPORTED" if exc.status_code < 500 else "UNKNOWN")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # The route's Allow lists every method of the catch-all route; say what this resource takes.
        headers["Allow"] = _allowed_methods(request.scope["path"])
    return _with_version(error_response(exc.status_code, code, exc.detail, headers=headers))


def _allowed_methods(path: str) -> str:
    if path in {"/v2", "/v2/"}:
        return _BASE_ALLOW["Allow"]
    target = resolve(path.removeprefix("/v2/"))
    return ", ".join(_HANDLERS[target.kind]) if target else ""


async def internal_error(request: Request, exc: Exception) -> Response:
    """An unexpected failure outside the dispatcher's own handling: never a traceback, on /v2/ OCI JSON."""
    if not is_registry_path(request.scope["path"]):
        return PlainTextResponse("Internal Server Error", status_code=500)
    return _with_version(error_response(500, "UNKNOWN", "internal error; the server log has details"))
