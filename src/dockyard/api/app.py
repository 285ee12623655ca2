"""The FastAPI application mounted at /api/v1, with one JSON error shape for every failure.

Errors read `{"error": {"code": "...", "message": "...", "field": "..."}}`; `field` names the input at
fault when there is one (validation errors: 422).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from dockyard import __version__
from dockyard.api.cache_routes import router as cache_router
from dockyard.api.deps import Context
from dockyard.api.routes import router
from dockyard.api.scan_routes import router as scan_router
from dockyard.api.vulndb_routes import router as vulndb_router
from dockyard.auth.errors import AuthError, Throttled, Unauthenticated
from dockyard.config import Settings
from dockyard.db.engine import DatabaseReadOnly, DatabaseUnavailable

if TYPE_CHECKING:
    from dockyard.app import AuthServices
    from dockyard.cache.directory import CacheDirectory
    from dockyard.scanning.service import ScanService
    from dockyard.scanning.vulndb_sync import VulnDbSync

_HTTP_CODES = {
    400: "INVALID_INPUT",
    401: "UNAUTHORIZED",
    403: "DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    422: "INVALID_INPUT",
    429: "TOO_MANY_REQUESTS",
}


def error(
    status: int, code: str, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The API's error body."""
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


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return error(
        exc.status_code, _HTTP_CODES.get(exc.status_code, "ERROR"), str(exc.detail), headers=exc.headers
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    first = problems[0] if problems else {"loc": (), "msg": "invalid request"}
    # loc starts with where the value came from (body, query, path): the field is what follows.
    path = [str(part) for part in first.get("loc", ())[1:]]
    field = ".".join(path) or None
    message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
    return error(422, "INVALID_INPUT", message, field)


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DatabaseReadOnly):
        return error(503, "UNAVAILABLE", str(exc), headers={"Retry-After": "10"})
    return error(503, "UNAVAILABLE", "the metadata database is unavailable; retry later")


def build_api(
    auth: AuthServices, settings: Settings, scans: ScanService, vulndb: VulnDbSync, caches: CacheDirectory
) -> FastAPI:
    """The /api/v1 application."""
    api = FastAPI(
        title="Dockyard management API",
        version=__version__,
        description=(
            "Accounts, organizations, teams, repositories, grants, access tokens, the audit log and "
            "vulnerability scanning. "
            "Authenticate with Basic credentials (password or personal access token), a bearer token, "
            "or a session cookie from POST /session plus the X-CSRF-Token header on unsafe methods."
        ),
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    api.state.context = Context(auth=auth, settings=settings, scans=scans, vulndb=vulndb)
    api.state.caches = caches
    api.add_exception_handler(AuthError, _auth_error)
    api.add_exception_handler(HTTPException, _http_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(DatabaseUnavailable, _unavailable)
    # First: the repository routes' `{name:path}` would take the scanning routes' longer paths.
    api.include_router(scan_router)
    api.include_router(vulndb_router)
    api.include_router(cache_router)
    api.include_router(router)
    return api
