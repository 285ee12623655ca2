"""Sign in and sign out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dockyard.auth.errors import Throttled, Unauthenticated
from dockyard.ui.render import page
from dockyard.ui.session import sign_in, sign_out, viewer
from dockyard.ui.views.common import back, notice, posted


def _next(target: str) -> str:
    """Only a path on this site (never `//host` or a URL) may follow sign-in."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


async def sign_in_page(request: Request) -> Response:
    """GET /sign-in."""
    current = await viewer(request)
    target = _next(request.query_params.get("next", "/"))
    if current.signed_in:
        return RedirectResponse(target, status_code=303)
    return page(request, current, "sign_in.html", next=target, notice=notice(request))


async def sign_in_submit(request: Request) -> Response:
    """POST /sign-in: a password or a personal access token."""
    form = await posted(request)
    target = _next(form.get("next", "/"))
    response = RedirectResponse(target, status_code=303)
    try:
        await sign_in(request, response, form.get("username").strip(), form.get("password"))
    except (Unauthenticated, Throttled) as exc:
        status = 429 if isinstance(exc, Throttled) else 401
        return page(
            request,
            form.viewer,
            "sign_in.html",
            status=status,
            next=target,
            error=exc.message,
            username=form.get("username"),
        )
    return response


async def sign_out_submit(request: Request) -> Response:
    """POST /sign-out."""
    await posted(request)
    response = back("/sign-in", "signed-out")
    await sign_out(request, response)
    return response
