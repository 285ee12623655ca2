"""The viewer's own profile: full name, password, personal access tokens, the content cache for pulls."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from dockyard.auth.authenticate import client_address
from dockyard.auth.errors import AuthError, InvalidInput, NotFound, Unauthenticated
from dockyard.auth.identity import FreshPassword
from dockyard.registry.numbers import parse_count
from dockyard.ui.render import page
from dockyard.ui.session import Viewer, viewer
from dockyard.ui.views.common import Form, back, call, notice, posted, services, signed_in

MAX_TOKEN_DAYS = 3650


async def _page(request: Request, current: Viewer, status: int = 200, **extra: object) -> Response:
    svc = services(request)
    assert current.identity.name is not None
    user = await call(svc.auth.accounts.user, current.identity.name)
    tokens = await call(svc.auth.credentials.access_tokens, current.identity)
    orgs = await call(svc.auth.organizations.organizations_of, current.identity)
    caches = await call(svc.caches.all)
    chosen = await call(svc.caches.chosen_by, current.identity, current.identity.name)
    return page(
        request,
        current,
        "profile.html",
        status=status,
        user=user,
        tokens=tokens,
        organizations=orgs,
        caches=caches,
        chosen_cache=chosen,
        notice=notice(request),
        **extra,
    )


async def show(request: Request) -> Response:
    """GET /profile."""
    current = await viewer(request)
    signed_in(current)
    return await _page(request, current)


async def act(request: Request) -> Response:
    """POST /profile/<action>: name, password, token, revoke, cache."""
    form = await posted(request)
    signed_in(form.viewer)
    action = request.path_params["action"]
    try:
        if action == "name":
            return await _name(request, form)
        if action == "password":
            return await _password(request, form)
        if action == "token":
            return await _token(request, form)
        if action == "revoke":
            return await _revoke(request, form)
        if action == "cache":
            return await _cache(request, form)
    except (InvalidInput, Unauthenticated, NotFound) as exc:
        return await _page(request, form.viewer, status=exc.status, error=exc.message)
    raise AuthError("no such form")


async def _name(request: Request, form: Form) -> Response:
    identity = form.viewer.identity
    assert identity.name is not None
    await call(services(request).auth.accounts.set_full_name, identity, identity.name, form.get("full_name"))
    return back("/profile", "saved")


async def _password(request: Request, form: Form) -> Response:
    if form.get("new_password") != form.get("repeat_password"):
        raise InvalidInput("the two new passwords differ", "repeat_password")
    await call(
        services(request).auth.authenticator.change_own_password,
        form.viewer.identity,
        form.get("current_password") or None,
        form.get("new_password"),
        client_address(request),
    )
    return back("/profile", "password")


async def _token(request: Request, form: Form) -> Response:
    days = form.get("expires_in_days")
    count = parse_count(days) if days else None
    if days and (count is None or not 1 <= count <= MAX_TOKEN_DAYS):
        raise InvalidInput(f"the expiry is 1 to {MAX_TOKEN_DAYS} days, or empty for none", "expires_in_days")
    expires = time.time() + count * 86400 if count else None
    fresh = await _confirm(request, form)
    token, secret = await call(
        services(request).auth.credentials.create_access_token,
        form.viewer.identity,
        form.get("name").strip(),
        read_only=form.get("read_only") == "on",
        expires_at=expires,
        fresh=fresh,
    )
    # Shown in this response only: the page is not cached (Cache-Control: no-store) and never redirected to.
    return await _page(request, form.viewer, status=201, new_token=token, secret=secret)


async def _confirm(request: Request, form: Form) -> FreshPassword | None:
    # A session could be stolen: sensitive changes need the current password (throttled like a login).
    return await call(
        services(request).auth.authenticator.confirm_password,
        form.viewer.identity,
        form.get("current_password") or None,
        client_address(request),
    )


async def _revoke(request: Request, form: Form) -> Response:
    await call(
        services(request).auth.credentials.revoke_access_token, form.viewer.identity, form.get("token")
    )
    return back("/profile", "revoked")


async def _cache(request: Request, form: Form) -> Response:
    identity = form.viewer.identity
    assert identity.name is not None
    chosen = form.get("cache") or None
    await call(services(request).caches.choose_for_user, identity, identity.name, chosen)
    return back("/profile", "saved")
