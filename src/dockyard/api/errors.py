"""The API's one error shape, its exception handlers, and the error responses each route documents.

Every failure reads `{"error": {"code": "...", "message": "...", "field": "..."}}`; `field` names the input at
fault when there is one (a body or query field, a path parameter, or a header name).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match

from dockyard.auth.errors import AuthError, Throttled, Unauthenticated
from dockyard.content.errors import (
    BlobUnknown,
    ContentError,
    ManifestReferenced,
    ManifestUnknown,
    NameUnknown,
)
from dockyard.db.engine import DatabaseReadOnly, DatabaseUnavailable

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "INVALID_INPUT",
    401: "UNAUTHORIZED",
    403: "DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID_INPUT",
    429: "TOO_MANY_REQUESTS",
}

# What a status means, for the schema's per-route error documentation.
_MEANING = {
    400: "Malformed request: body, header or parameter",
    401: "Missing or wrong credentials",
    403: "Authenticated, but not allowed",
    404: "No such resource (or not visible to the caller)",
    409: "Conflicts with the current state",
    413: "Request body too large",
    422: "Well formed but invalid input; `field` names it",
    429: "Too many failed logins; see Retry-After",
    503: "The metadata database is unavailable; retry later",
}

# Statuses any route may answer: malformed input, wrong credentials, throttled logins, database down.
COMMON = (400, 401, 422, 429, 503)


class ErrorDetail(BaseModel):
    """What went wrong: a stable code, a message for humans, and the input at fault."""

    code: str = Field(description="Stable, e.g. INVALID_INPUT, UNAUTHORIZED, DENIED, NOT_FOUND, CONFLICT")
    message: str
    field: str | None = Field(default=None, description="The body field, parameter or header at fault")


class ErrorBody(BaseModel):
    """Every error of the API."""

    error: ErrorDetail


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route: the common error statuses plus these, each with the error body."""
    return {
        status: {"model": ErrorBody, "description": _MEANING[status]}
        for status in sorted({*COMMON, *statuses})
    }


def error(
    status: int, code: str, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The API's error response."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status, headers=dict(headers or {}))


async def _auth_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthError)
    headers: dict[str, str] = {}
    if isinstance(exc, Throttled):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Basic realm="dockyard"'
    return error(exc.status, exc.code, exc.message, exc.field, headers)


async def _content_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ContentError)
    if isinstance(exc, NameUnknown | ManifestUnknown | BlobUnknown):
        return error(404, "NOT_FOUND", exc.message)
    if isinstance(exc, ManifestReferenced):
        return error(409, "CONFLICT", exc.message)
    return error(400, "INVALID_INPUT", exc.message)


def _allowed(request: Request) -> str:
    """Every method some route takes at this path: the router names only the first route's."""
    methods: set[str] = set()
    for route in request.app.state.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed(request) or headers.get("Allow", "")
    message = str(exc.detail)
    if exc.status_code == 400 and message == "There was an error parsing the body":
        # FastAPI's words for a body json.loads gave up on: nested too deep, a number too long, bad bytes.
        message = "the body is not valid JSON (too deeply nested, a number too long, or malformed)"
    return error(exc.status_code, _HTTP_CODES.get(exc.status_code, "ERROR"), message, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    first = problems[0] if problems else {"loc": (), "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        return error(400, "INVALID_INPUT", "the body is not valid JSON")
    # loc starts with where the value came from (body, query, path, header): the field is what follows.
    path = [str(part) for part in first.get("loc", ())[1:]]
    field = ".".join(path) or None
    message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
    return error(422, "INVALID_INPUT", message, field)


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DatabaseReadOnly):
        return error(503, "UNAVAILABLE", str(exc), headers={"Retry-After": "10"})
    return error(503, "UNAVAILABLE", "the metadata database is unavailable; retry later")


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the log, never to the client.
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error(500, "INTERNAL_ERROR", "internal error; the server log has the details")


def install_handlers(api: FastAPI) -> None:
    """Render every failure of the API, the framework's own included, in the API's error shape."""
    api.add_exception_handler(AuthError, _auth_error)
    api.add_exception_handler(ContentError, _content_error)
    api.add_exception_handler(HTTPException, _http_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(DatabaseUnavailable, _unavailable)
    api.add_exception_handler(Exception, _internal)
