"""Sign-in for the web UI: who is viewing, sessions, and CSRF checks. The one place the UI touches
credentials: the viewer is whoever the one credential resolver (dockyard.auth.resolver) finds behind the
session cookie, for the UI audience, as the other surfaces find their callers.

A signed-in viewer's forms carry the session's CSRF token; the sign-in form, before any session exists,
carries a token also set in a short-lived cookie (double submit). Any POST whose Origin names another site
is refused whatever it carries.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from dockyard.auth.authenticate import SignIn, client_address
from dockyard.auth.errors import AccountDisabled, CredentialRefused, Forbidden
from dockyard.auth.identity import ANONYMOUS, Identity
from dockyard.auth.resolver import Audience

if TYPE_CHECKING:
    from dockyard.app import AuthServices

SESSION_COOKIE = "dockyard_session"
SIGN_IN_COOKIE = "dockyard_sign_in"
CSRF_FIELD = "csrf_token"
_SIGN_IN_TTL = 3600


@dataclass(frozen=True)
class Viewer:
    """The person looking at a page, and the CSRF token their forms must carry."""

    identity: Identity
    csrf: str
    # The session cookie sent is live but its account is deactivated: the page says so to its holder.
    deactivated: bool = False

    @property
    def signed_in(self) -> bool:
        """Whether a session stands behind this viewer."""
        return not self.identity.anonymous


def _services(request: Request) -> AuthServices:
    auth: AuthServices = request.app.state.services.auth
    return auth


def _secure(request: Request) -> bool:
    external = request.app.state.services.settings.external_url or ""
    return request.url.scheme == "https" or external.startswith("https://")


async def viewer(request: Request) -> Viewer:
    """The viewer of this request: the session's identity, or anonymous with a sign-in CSRF token. Sets
    `request.state.identity` (with the client's address) for the access log, metrics and audit events."""
    cookie = request.cookies.get(SESSION_COOKIE)
    address = client_address(request)
    request.state.identity = ANONYMOUS
    deactivated = False
    if cookie:
        try:
            found = await _services(request).resolver.resolve(Audience.UI, None, cookie, address)
        except CredentialRefused:
            found = None  # an expired or ended session: the page is shown as to anyone
        except AccountDisabled:
            found, deactivated = None, True  # shown as to anyone, and told why
        if found is not None and found.csrf_token is not None:
            identity = dataclasses.replace(found.identity, address=address)
            request.state.identity = identity
            return Viewer(identity, found.csrf_token)
    token = request.cookies.get(SIGN_IN_COOKIE) or ""
    if len(token) != 43:
        token = secrets.token_urlsafe(32)
    return Viewer(ANONYMOUS, token, deactivated)


def remember_sign_in_token(request: Request, response: Response, current: Viewer) -> None:
    """Anonymous pages set the cookie half of the sign-in form's double-submit token."""
    if not current.signed_in and request.cookies.get(SIGN_IN_COOKIE) != current.csrf:
        response.set_cookie(
            SIGN_IN_COOKIE,
            current.csrf,
            max_age=_SIGN_IN_TTL,
            httponly=True,
            samesite="strict",
            secure=_secure(request),
            path="/",
        )


def _own_origins(request: Request) -> set[str]:
    """This site as browsers name it: as the request reached us, and as `external_url` (behind a proxy that
    ends TLS, the browser's origin is https while the request here is http)."""
    origins = {f"{request.url.scheme}://{request.url.netloc}"}
    external = request.app.state.services.settings.external_url
    if external:
        scheme, _, rest = external.partition("://")
        origins.add(f"{scheme}://{rest.split('/', 1)[0]}")
    return origins


def check_form(request: Request, current: Viewer, sent: str) -> None:
    """Refuse a POST from another origin or without the viewer's CSRF token (Forbidden)."""
    origin = request.headers.get("origin")
    if origin is not None and origin not in _own_origins(request):
        raise Forbidden("this form was sent from another site")
    if not sent or not hmac.compare_digest(sent.encode(), current.csrf.encode()):
        raise Forbidden("the form has expired or did not come from this site; reload the page and retry")
    if not current.signed_in and request.cookies.get(SIGN_IN_COOKIE) != current.csrf:
        raise Forbidden("the form has expired; reload the page and retry")


async def sign_in(request: Request, response: Response, username: str, secret: str) -> Identity:
    """Check a password or personal access token (throttled and audited) and start a session."""
    auth = _services(request)
    identity = await auth.resolver.password(
        Audience.UI, username, secret, client_address(request), sign_in=SignIn.ALWAYS
    )
    cookie, _csrf = await run_in_threadpool(auth.credentials.create_session, identity)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=request.app.state.services.settings.session_ttl_seconds,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/")
    return identity


async def sign_out(request: Request, response: Response) -> None:
    """End the session, server side too."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await run_in_threadpool(_services(request).credentials.end_session, cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")
