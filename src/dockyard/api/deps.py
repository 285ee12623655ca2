"""Who is calling the API: the credential resolver's answer for the API audience, and the CSRF check."""

from __future__ import annotations

import dataclasses
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from dockyard.auth.authenticate import client_address
from dockyard.auth.errors import Forbidden, Unauthenticated
from dockyard.auth.identity import Identity
from dockyard.auth.resolver import Audience
from dockyard.config import Settings

if TYPE_CHECKING:
    from dockyard.app import AuthServices
    from dockyard.cluster.replicas import ReplicaRegistry
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
    cluster: ReplicaRegistry


def context(request: Request) -> Context:
    """The API's services."""
    ctx: Context = request.app.state.context
    return ctx


async def caller(request: Request, ctx: Annotated[Context, Depends(context)]) -> Identity:
    """The identity behind the request's credentials (as the resolver accepts them for the API: a session,
    Basic credentials, a personal access token; never a registry or refresh token); anonymous when none."""
    address = client_address(request)
    found = await ctx.auth.resolver.resolve(
        Audience.API, request.headers.get("authorization"), request.cookies.get(SESSION_COOKIE), address
    )
    if found.csrf_token is not None and request.method not in _SAFE_METHODS:
        # Double submit: a cross-site form can send the cookie but cannot read the token to echo it.
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent, found.csrf_token):
            raise Forbidden(f"missing or wrong {CSRF_HEADER} header")
    # Read by the access log (dockyard.observability.requests), as on /v2/; the services' audit events
    # name the address.
    identity = dataclasses.replace(found.identity, address=address)
    request.state.identity = identity
    return identity


def user(identity: Annotated[Identity, Depends(caller)]) -> Identity:
    """The caller, who must be logged in."""
    if identity.anonymous:
        raise Unauthenticated("authentication required")
    return identity


Ctx = Annotated[Context, Depends(context)]
Caller = Annotated[Identity, Depends(caller)]
User = Annotated[Identity, Depends(user)]
