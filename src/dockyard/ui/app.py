"""The UI's routes and its error pages (403, 404, 500 and the rest, never with a stack trace)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dockyard.auth.errors import AuthError, Unauthenticated
from dockyard.content.errors import (
    ContentError,
    ManifestReferenced,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    TagInvalid,
)
from dockyard.ui.render import HERE, page
from dockyard.ui.session import viewer
from dockyard.ui.views import accounts, auth, dashboard, profile, repositories, repository, system

if TYPE_CHECKING:
    from dockyard.app import Services

log = logging.getLogger(__name__)

_CONTENT_STATUS: dict[type[ContentError], int] = {
    NameUnknown: 404,
    ManifestUnknown: 404,
    NameInvalid: 400,
    TagInvalid: 400,
    ManifestReferenced: 409,
}
# Whatever is missing, and whether it is missing or hidden from this viewer, the same words.
_NOT_FOUND = "There is nothing here, or you may not see it."
_TITLES = {
    400: "That did not work",
    401: "Sign in required",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    429: "Too many attempts",
    500: "Something went wrong",
}


async def _error_page(request: Request, status: int, message: str) -> Response:
    current = await viewer(request)
    title = _TITLES.get(status, "That did not work")
    return page(request, current, "error.html", status=status, title=title, message=message)


async def _auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    if isinstance(exc, Unauthenticated) and request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/sign-in?next={quote(target)}", status_code=303)
    return await _error_page(request, exc.status, _NOT_FOUND if exc.status == 404 else exc.message)


async def _content_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ContentError)
    status = _CONTENT_STATUS.get(type(exc), 400)
    message = _NOT_FOUND if status == 404 else exc.message
    return await _error_page(request, status, message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = _NOT_FOUND if exc.status_code == 404 else str(exc.detail)
    return await _error_page(request, exc.status_code, message)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("UI error on %s %s", request.method, request.url.path, exc_info=exc)
    return await _error_page(request, 500, "The error was logged. Try again, or tell an administrator.")


def build_ui(services: Services) -> Starlette:
    """The web UI as an ASGI app, mounted at `/` after the other surfaces."""
    routes = [
        Route("/", repositories.repositories, methods=["GET", "HEAD"]),
        Route("/sign-in", auth.sign_in_page, methods=["GET", "HEAD"]),
        Route("/sign-in", auth.sign_in_submit, methods=["POST"]),
        Route("/sign-out", auth.sign_out_submit, methods=["POST"]),
        Route("/new-repository", repositories.new_repository, methods=["GET", "HEAD"]),
        Route("/new-repository", repositories.create_repository, methods=["POST"]),
        Route("/repositories/{rest:path}", repository.show, methods=["GET", "HEAD"]),
        Route("/repositories/{rest:path}", repository.act, methods=["POST"]),
        Route("/profile", profile.show, methods=["GET", "HEAD"]),
        Route("/profile/{action}", profile.act, methods=["POST"]),
        Route("/organizations", accounts.organizations, methods=["GET", "HEAD"]),
        Route("/organizations", accounts.create_organization, methods=["POST"]),
        Route("/organizations/{org}", accounts.organization, methods=["GET", "HEAD"]),
        Route("/organizations/{org}/{action}", accounts.organization_act, methods=["POST"]),
        Route("/users", accounts.users, methods=["GET", "HEAD"]),
        Route("/users/{action}", accounts.users_act, methods=["POST"]),
        Route("/dashboard", dashboard.dashboard, methods=["GET", "HEAD"]),
        Route("/system", system.system, methods=["GET", "HEAD"]),
        Route("/system/gc", system.collect_garbage, methods=["POST"]),
        Route("/system/caches", system.manage_caches, methods=["POST"]),
        Route("/system/settings", system.save_settings, methods=["POST"]),
        Route("/system/vulndb", system.import_advisories, methods=["POST"]),
        Route("/system/audit", system.audit_log, methods=["GET", "HEAD"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    ui = Starlette(
        routes=routes,
        exception_handlers={
            AuthError: _auth_error,
            ContentError: _content_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    ui.state.services = services
    return ui
