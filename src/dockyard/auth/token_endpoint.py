"""GET and POST /auth/token, as the Docker token specification describes them, and the JWKS.

GET: Basic credentials (or none, for an anonymous token), repeated `scope` parameters, `service`,
`offline_token=true` for a refresh token. POST (OAuth2 form): `grant_type=password` with `username` and
`password`, or `grant_type=refresh_token` with `refresh_token`; `scope` holds space-separated scopes;
`access_type=offline` asks for a refresh token. The token's `access` claim is the intersection of what
was asked and what the policy allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.auth import policy as p
from dockyard.auth.authenticate import Authenticator, SignIn, client_address
from dockyard.auth.credentials import CredentialService
from dockyard.auth.errors import AuthError, InvalidInput, Throttled, Unauthenticated
from dockyard.auth.identity import Identity
from dockyard.auth.keys import KeyRing
from dockyard.auth.permissions import Permissions
from dockyard.auth.registry_access import REGISTRY_ACTIONS
from dockyard.auth.resolver import Audience, CredentialResolver
from dockyard.auth.tokens import Scope, ScopeInvalid, TokenIssuer, parse_scopes
from dockyard.config import Settings
from dockyard.content.repositories import check_repository_name
from dockyard.db.engine import DatabaseReadOnly
from dockyard.events.audit import AuditLog
from dockyard.observability import metrics

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_SCOPES = 50


@dataclass(frozen=True)
class TokenServices:
    """What the token endpoint needs."""

    settings: Settings
    permissions: Permissions
    credentials: CredentialService
    authenticator: Authenticator
    resolver: CredentialResolver
    issuer: TokenIssuer
    keys: KeyRing
    audit: AuditLog


def _services(request: Request) -> TokenServices:
    services: TokenServices = request.app.state.token_services
    return services


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    # Both shapes: Distribution's `errors` list, and OAuth2's `error` for the POST flavour.
    body = {
        "errors": [{"code": code, "message": message}],
        "error": code.lower(),
        "error_description": message,
    }
    return JSONResponse(body, status_code=status, headers={**_NO_STORE, **(headers or {})})


def _auth_error(exc: AuthError) -> Response:
    if isinstance(exc, Throttled):
        return _error(429, "TOOMANYREQUESTS", exc.message, {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, Unauthenticated):
        return _error(401, "UNAUTHORIZED", exc.message, {"WWW-Authenticate": 'Basic realm="dockyard"'})
    return _error(400, "INVALID_REQUEST", exc.message)


def grant(permissions: Permissions, identity: Identity, scopes: list[Scope]) -> list[Scope]:
    """What of the asked scopes the policy allows the identity: the `access` claim."""
    granted: list[Scope] = []
    settings = permissions.policy_settings
    repository_scopes = [s for s in scopes if s.type == "repository"]
    valid_names = []
    for scope in repository_scopes:
        try:
            valid_names.append(check_repository_name(scope.name))
        except InvalidInput:
            continue
    facts = permissions.facts_many(identity, list(dict.fromkeys(valid_names))) if valid_names else {}
    for scope in scopes:
        if scope.type == "repository" and scope.name in facts:
            asked = list(scope.actions)
            if "*" in asked:
                asked = list(REGISTRY_ACTIONS)
            allowed = [
                action
                for action in asked
                if action in REGISTRY_ACTIONS
                and p.may(identity, facts[scope.name], REGISTRY_ACTIONS[action], settings)
            ]
            if allowed:
                granted.append(Scope("repository", scope.name, tuple(dict.fromkeys(allowed))))
        elif scope.type == "registry" and scope.name == "catalog" and "*" in scope.actions:
            # Everyone may list the catalog: it only ever shows what the caller may browse.
            granted.append(Scope("registry", "catalog", ("*",)))
    return granted


async def token(request: Request) -> Response:
    """GET or POST /auth/token."""
    services = _services(request)
    address = client_address(request)
    try:
        if request.method == "POST":
            form = await request.form()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            raw_scopes = [fields.get("scope", "")]
        else:
            fields = dict(request.query_params)
            raw_scopes = request.query_params.getlist("scope")
        service = fields.get("service")
        if service is not None and service != services.settings.service:
            return _error(400, "INVALID_REQUEST", f"this registry's service is {services.settings.service!r}")
        try:
            scopes = parse_scopes(raw_scopes)
        except ScopeInvalid as exc:
            return _error(400, "INVALID_REQUEST", str(exc))
        if len(scopes) > MAX_SCOPES:
            return _error(400, "INVALID_REQUEST", f"at most {MAX_SCOPES} scopes per request")
        client_id = fields.get("client_id", "")[:100]
        if request.method == "POST":
            identity, offline = await _post_identity(services, fields, address)
        else:
            identity, offline = await _get_identity(services, request, fields, address)
    except AuthError as exc:
        return _auth_error(exc)
    request.state.identity = identity  # for the access log

    access = await run_in_threadpool(grant, services.permissions, identity, scopes)
    jwt, expires_in, issued_at = await run_in_threadpool(services.issuer.issue, identity, access)
    body: dict[str, Any] = {
        "token": jwt,
        "access_token": jwt,
        "expires_in": expires_in,
        "issued_at": datetime.fromtimestamp(issued_at, UTC).isoformat().replace("+00:00", "Z"),
    }
    if request.method == "POST":
        body["scope"] = " ".join(s.render() for s in access)
    if offline and not identity.anonymous:
        try:
            body["refresh_token"] = await run_in_threadpool(
                services.credentials.issue_refresh_token, identity, client_id
            )
        except DatabaseReadOnly:
            # Without a quorum no refresh token can be stored: docker login then keeps the password
            # instead, and every pull still gets its token.
            metrics.write_skipped("refresh_token")
        else:
            services.audit.record(
                "token.refresh.create", actor=identity, address=address, client_id=client_id
            )
    return JSONResponse(body, headers=_NO_STORE)


async def _get_identity(
    services: TokenServices, request: Request, fields: dict[str, str], address: str | None
) -> tuple[Identity, bool]:
    offline = fields.get("offline_token", "").lower() == "true"
    found = await services.resolver.resolve(
        Audience.TOKEN, request.headers.get("authorization"), None, address, sign_in=_sign_in(offline)
    )
    return found.identity, offline


async def _post_identity(
    services: TokenServices, fields: dict[str, str], address: str | None
) -> tuple[Identity, bool]:
    grant_type = fields.get("grant_type")
    if grant_type == "password":
        username, password = fields.get("username"), fields.get("password")
        if not username or password is None:
            raise InvalidInput("username and password are required")
        offline = fields.get("access_type") == "offline"
        identity = await services.resolver.password(
            Audience.TOKEN, username, password, address, sign_in=_sign_in(offline)
        )
        return identity, offline
    if grant_type == "refresh_token":
        # A client's token refresh is not a sign-in: the sign-in was when the refresh token was issued.
        return await services.resolver.refresh(fields.get("refresh_token", "")), False
    raise InvalidInput("grant_type must be password or refresh_token")


def _sign_in(offline: bool) -> SignIn:
    # Asking for a refresh token is `docker login`: a sign-in. Other clients log in for every token.
    return SignIn.ALWAYS if offline else SignIn.AFTER_GAP


async def jwks(request: Request) -> Response:
    """GET /auth/jwks.json: the public keys registry tokens are verified with."""
    return JSONResponse(_services(request).keys.jwks(), headers={"Cache-Control": "max-age=300"})
