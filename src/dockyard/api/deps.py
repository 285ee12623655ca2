"""Who is calling the API: session cookie (checked for CSRF), Basic credentials, access or bearer token."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from dockyard.auth.authenticate import bearer_token, client_address, parse_basic
from dockyard.auth.credentials import looks_like_access_token
from dockyard.auth.errors import Forbidden, Unauthenticated
from dockyard.auth.identity import ANONYMOUS, Identity
from dockyard.auth.tokens import TokenInvalid
from dockyard.config import Settings

if TYPE_CHECKING:
    from dockyard.app import AuthServices
    from dockyard.scanning.service import ScanService
    from dockyard.scanning.vulndb_sync import VulnDbSync

SESSION_COOKIE = "dockyard_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@dataclass(frozen=True)
class Context:
    """The services and settings every route uses."""

    auth: AuthServices
    settings: Settings
    scans: ScanService
    vulndb: VulnDbSync


def context(request: Request) -> Context:
    """The API's services."""
    ctx: Context = request.app.state.context
    return ctx


def caller(request: Request, ctx: Annotated[Context, Depends(context)]) -> Identity:
    """The identity behind the request's credentials; anonymous when there are none."""
    identity = _identify(request, ctx)
    # Read by the access log (dockyard.observability.requests), as on /v2/.
    request.state.identity = identity
    return identity


def _identify(request: Request, ctx: Context) -> Identity:
    auth = ctx.auth
    address = client_address(request)
    header = request.headers.get("authorization")
    if header:
        basic = parse_basic(header)
        if basic is not None:
            return auth.authenticator.login(basic[0], basic[1], address, via="api", record=False)
        auth.throttle.check(None, address)
        token = bearer_token(header)
        if token is None:
            raise Unauthenticated("use Basic credentials, an access token or a bearer token")
        if looks_like_access_token(token):
            identity = auth.credentials.authenticate_access_token_alone(token)
            if identity is None:
                auth.throttle.failure(None, address)
                raise Unauthenticated("invalid, expired or revoked access token")
            return identity
        try:
            claims = auth.authenticator.verify_bearer(token)
            return auth.authenticator.from_claims(claims)
        except TokenInvalid as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        found = auth.credentials.session(cookie)
        if found is None:
            raise Unauthenticated("the session has expired; log in again")
        identity, csrf = found
        if request.method not in _SAFE_METHODS:
            # Double submit: a cross-site form can send the cookie but cannot read the token to echo it.
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not hmac.compare_digest(sent, csrf):
                raise Forbidden(f"missing or wrong {CSRF_HEADER} header")
        return identity
    return ANONYMOUS


def user(identity: Annotated[Identity, Depends(caller)]) -> Identity:
    """The caller, who must be logged in."""
    if identity.anonymous:
        raise Unauthenticated("authentication required")
    return identity


Ctx = Annotated[Context, Depends(context)]
Caller = Annotated[Identity, Depends(caller)]
User = Annotated[Identity, Depends(user)]
