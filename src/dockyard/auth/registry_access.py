"""The /v2/ surface's access hook, deciding with the policy: bearer tokens, Basic credentials or nobody."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from dockyard.auth import policy as p
from dockyard.auth.authenticate import Authenticator, client_address
from dockyard.auth.errors import CredentialRefused, Throttled, Unauthenticated
from dockyard.auth.identity import ANONYMOUS, Identity
from dockyard.auth.permissions import Permissions
from dockyard.auth.resolver import Audience, CredentialResolver
from dockyard.auth.tokens import Claims, TokenInvalid
from dockyard.config import Settings
from dockyard.content.repositories import RepositoryService
from dockyard.events.audit import DENIED, AuditLog
from dockyard.registry.access import PUSH, AccessDenied, AuthenticationRequired, TooManyRequests
from dockyard.registry.context import short_read

P = ParamSpec("P")
T = TypeVar("T")
REGISTRY_ACTIONS = {"pull": p.Action.PULL, "push": p.Action.PUSH, "delete": p.Action.DELETE}
_AUDITED = {"PUT": "registry.push", "DELETE": "registry.delete"}


def realm(request: Request, settings: Settings) -> str:
    """The token endpoint's URL: from external_url, else from the request's own scheme and host."""
    base = settings.external_url or str(request.base_url).rstrip("/")
    return f"{base}/auth/token"


def challenge(request: Request, settings: Settings, scope: str | None, error: str | None = None) -> str:
    """The WWW-Authenticate value sending the client to the token endpoint."""
    parts = [f'realm="{realm(request, settings)}"', f'service="{settings.service}"']
    if scope:
        parts.append(f'scope="{scope}"')
    if error:
        parts.append(f'error="{error}"')
    return "Bearer " + ",".join(parts)


def registry_actions(actions: Sequence[str]) -> list[p.Action]:
    """Policy actions for registry action names; unknown names are ignored (never granted)."""
    return [REGISTRY_ACTIONS[a] for a in actions if a in REGISTRY_ACTIONS]


class PolicyAccess:
    """Implements dockyard.registry.access.Access with the access policy."""

    def __init__(
        self,
        settings: Settings,
        permissions: Permissions,
        repositories: RepositoryService,
        authenticator: Authenticator,
        resolver: CredentialResolver,
        audit: AuditLog,
    ) -> None:
        self.settings = settings
        self.permissions = permissions
        self.repositories = repositories
        self.auth = authenticator
        self.resolver = resolver
        self.audit = audit
        # SQLite reads take microseconds and never wait for writers in WAL mode (see RegistryContext).
        self.inline_reads = permissions.db.is_sqlite

    async def require(
        self, request: Request, name: str | None, actions: Sequence[str], extra_scopes: Sequence[str] = ()
    ) -> None:
        """Return when allowed; raise AuthenticationRequired (401), AccessDenied (403) or TooManyRequests.

        A challenge asks for `extra_scopes` too (a mount's pull on its source).
        """
        try:
            await self._require(request, name, actions, extra_scopes)
        except AccessDenied:
            await self._denied(request, name)
            raise
        # The services' audit events say where the caller was.
        request.state.identity = dataclasses.replace(request.state.identity, address=client_address(request))

    async def _denied(self, request: Request, name: str | None) -> None:
        # A refused push or delete of a manifest (tag) is audited here, and a refused pull where pulls are;
        # what an allowed request did, the manifest service records with its outcome. Blob traffic would
        # drown the log.
        path: str = request.scope["path"]  # request.url would parse the whole URL on every request
        if name is None or "/manifests/" not in path:
            return
        action = _AUDITED.get(request.method)
        if action is None and request.method == "GET" and self.settings.audit_pulls:
            action = "registry.pull"
        if action is None:
            return
        reference = path.rpartition("/manifests/")[2]
        actor: Identity | None = getattr(request.state, "identity", None)
        await run_in_threadpool(
            self.audit.record,
            action,
            actor=actor,
            address=client_address(request),
            target=f"{name}:{reference}" if ":" not in reference else f"{name}@{reference}",
            outcome=DENIED,
            # A pull's event may wait for the next durable write.
            durable=action != "registry.pull",
        )

    async def _require(
        self, request: Request, name: str | None, actions: Sequence[str], extra_scopes: Sequence[str]
    ) -> None:
        scope = " ".join(filter(None, [_scope(request, name, actions), *extra_scopes]))
        claims, identity = await self._caller(request, scope)
        request.state.identity = identity
        if name is None:
            # The base endpoint and the catalog: any valid credential (or anonymous token) will do;
            # the catalog then filters. Without credentials, clients must learn where to get a token.
            if claims is None and identity.anonymous:
                raise AuthenticationRequired(
                    "authentication required", challenge(request, self.settings, scope)
                )
            if claims is not None:
                request.state.identity = await self._identity_of(claims)
            return
        if claims is not None:
            # The token's word is enough for what it grants: no database lookup on the hot path.
            request.state.identity = Identity(user_id=claims.user_id, name=claims.subject or None)
            if claims.allows("repository", name, list(actions)):
                if PUSH in actions:
                    await self._ensure_on_push(claims, name, request, scope)
                return
            identity = await self._identity_of(claims)
        wanted = registry_actions(actions)
        facts = await self._read(self.permissions.repo_facts, identity, name)
        settings = self.permissions.policy_settings
        refused = [action for action in wanted if not p.may(identity, facts, action, settings)]
        allowed = len(wanted) == len(actions) and not refused
        if allowed and claims is not None:
            # Allowed, but not by this token: the client asks the token endpoint again for this scope.
            raise AuthenticationRequired(
                "the token does not cover this action",
                challenge(request, self.settings, scope, "insufficient_scope"),
            )
        if not allowed:
            if identity.anonymous:
                raise AuthenticationRequired(
                    "authentication required", challenge(request, self.settings, scope)
                )
            if refused:
                raise AccessDenied(p.refusal(identity, facts, refused[0], settings, name))
            raise AccessDenied(f"{identity.name} may not {'/'.join(actions)} {name}")
        if PUSH in actions:
            await self._ensure_on_push(identity, name, request, scope)

    def scope(self, request: Request) -> p.BrowseScope:
        """Which repositories the caller may browse (`require(request, None, [])` identified it)."""
        identity: Identity = getattr(request.state, "identity", ANONYMOUS)
        return p.browse_scope(identity, self.permissions.policy_settings)

    async def _caller(self, request: Request, scope: str | None) -> tuple[Claims | None, Identity]:
        try:
            found = await self.resolver.resolve(
                Audience.REGISTRY, request.headers.get("authorization"), None, client_address(request)
            )
        except Throttled as exc:
            raise TooManyRequests(exc.message, exc.retry_after) from exc
        except CredentialRefused as exc:
            error = "invalid_token" if exc.invalid_token else None
            raise AuthenticationRequired(
                exc.message, challenge(request, self.settings, scope, error)
            ) from exc
        except Unauthenticated as exc:
            raise AuthenticationRequired(exc.message, challenge(request, self.settings, scope)) from exc
        if found.claims is not None:
            return found.claims, ANONYMOUS
        return None, found.identity

    async def _read(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await short_read(self.inline_reads, func, *args, **kwargs)

    async def _identity_of(self, claims: Claims) -> Identity:
        try:
            return await self._read(self.auth.from_claims, claims)
        except TokenInvalid:
            return ANONYMOUS

    async def _ensure_on_push(
        self, caller: Identity | Claims, name: str, request: Request, scope: str | None
    ) -> None:
        # Every request of a push passes here: settle the common case, an existing repository, with
        # one short read and no lookup of the caller's account.
        if await self._read(self.repositories.exists, name):
            return
        identity = caller if isinstance(caller, Identity) else await self._identity_of(caller)
        # The repository service records the creation, from this address.
        identity = dataclasses.replace(identity, address=client_address(request))
        outcome = await run_in_threadpool(self.repositories.ensure_on_push, identity, name)
        if outcome == "denied":
            if identity.anonymous:
                raise AuthenticationRequired(
                    "authentication required", challenge(request, self.settings, scope)
                )
            if identity.read_only:
                raise AccessDenied(f"this access token is read-only: it may not create {name}")
            raise AccessDenied(f"{identity.name} may not create {name}")


def _scope(request: Request, name: str | None, actions: Sequence[str]) -> str | None:
    if name is not None:
        return f"repository:{name}:{','.join(actions)}"
    if request.scope["path"].rstrip("/").endswith("/_catalog"):
        return "registry:catalog:*"
    return None
