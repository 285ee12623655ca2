"""The one credential resolver: what a request presents, for the surface it calls, becomes an Identity.

Each surface is an audience, and accepts only the credentials meant for it:

- REGISTRY (`/v2/`): a registry token (bearer JWT, within its `access` claim); Basic (password or access
  token).
- TOKEN (`/auth/token`): Basic (password or access token), or nothing for an anonymous token; the POST
  form's grants go through `password` and `refresh`.
- API (`/api/v1`): a session cookie (with its CSRF token), Basic (password or access token), a bearer
  personal access token.
- UI (the web pages): a session cookie (with its CSRF token); the sign-in form goes through `password`.

A registry token never opens the API or the UI, and a refresh token only buys registry tokens. Refusals
are typed: CredentialRefused (401; `invalid_token` when a bearer token is bad), AccountDisabled (401, after a
correct secret, a session or a registry token of a user deactivated since: see auth/standing.py),
Throttled (429).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from starlette.concurrency import run_in_threadpool

from dockyard.auth.authenticate import Authenticator, SignIn, bearer_token, parse_basic
from dockyard.auth.credentials import REFRESH_TOKEN_PREFIX, looks_like_access_token
from dockyard.auth.errors import AccountDisabled, CredentialRefused
from dockyard.auth.identity import ANONYMOUS, Credential, Identity
from dockyard.auth.standing import AccountStanding, Standing
from dockyard.auth.tokens import Claims, TokenInvalid
from dockyard.registry.context import short_read


class Audience(StrEnum):
    """The surface a credential is presented to."""

    REGISTRY = "registry"
    TOKEN = "token"  # noqa: S105 (a surface, not a secret)
    API = "api"
    UI = "ui"


@dataclass(frozen=True)
class Resolved:
    """Who is calling. `claims` is set for a registry token: its `access` claim is what it may do, and
    `identity` then holds only the token's user id and name (no lookup beyond the cached account check).
    `csrf_token` is set for a session: unsafe methods must echo it."""

    identity: Identity
    claims: Claims | None = None
    csrf_token: str | None = None


NOBODY = Resolved(ANONYMOUS)
_REGISTRY_ONLY = (
    "a registry token opens /v2/ only; use a personal access token, Basic credentials or a session here"
)


class CredentialResolver:
    """Turns a request's credentials into an Identity for one audience. Async: blocking checks run off
    the event loop, except the short reads that SQLite answers inline (`inline_reads`)."""

    def __init__(
        self, authenticator: Authenticator, *, inline_reads: bool, standing: AccountStanding
    ) -> None:
        self.auth = authenticator
        self.inline_reads = inline_reads
        self.standing = standing

    async def resolve(
        self,
        audience: Audience,
        authorization: str | None,
        cookie: str | None,
        address: str | None,
        *,
        sign_in: SignIn = SignIn.NEVER,
    ) -> Resolved:
        """The caller behind the Authorization header (or, where the audience takes one, the session
        cookie); NOBODY when there is neither. `sign_in` says whether a password login is audited."""
        if audience is Audience.UI:
            return await self._session(cookie) if cookie else NOBODY
        if not authorization:
            return await self._session(cookie) if cookie and audience is Audience.API else NOBODY
        token = bearer_token(authorization)
        if token is not None:
            if audience is Audience.REGISTRY:
                return await self._registry_token(token)
            if audience is Audience.API:
                return Resolved(await self._api_bearer(token))
            raise CredentialRefused("the token endpoint takes Basic credentials or a refresh token grant")
        basic = parse_basic(authorization)
        if basic is None:
            raise CredentialRefused("unsupported authorization scheme: use Basic or Bearer")
        return Resolved(await self._basic(audience, basic[0], basic[1], address, sign_in))

    async def password(
        self, audience: Audience, username: str, secret: str, address: str | None, *, sign_in: SignIn
    ) -> Identity:
        """A user name with a password or access token from a form (the token endpoint's password grant,
        a sign-in page)."""
        return await run_in_threadpool(self._login, audience, username, secret, address, sign_in)

    async def refresh(self, secret: str) -> Identity:
        """The identity a refresh token stands for (the token endpoint's refresh grant only)."""
        identity = await run_in_threadpool(self.auth.credentials.use_refresh_token, secret)
        if identity is None:
            self.auth.throttle.counters.add(failures=1)
            raise CredentialRefused("invalid, expired or revoked refresh token")
        return identity

    async def _basic(
        self, audience: Audience, username: str, secret: str, address: str | None, sign_in: SignIn
    ) -> Identity:
        if secret.startswith(f"{REFRESH_TOKEN_PREFIX}_"):
            raise CredentialRefused(
                "a refresh token is only exchanged at /auth/token (grant_type=refresh_token)"
            )
        if sign_in is SignIn.NEVER:
            # Basic on every request (some clients never ask for a token): a password verified lately is
            # settled by one short read, inline on SQLite; argon2 and the throttle's writes run off the loop.
            remembered = await short_read(
                self.inline_reads, self.auth.remembered_login, username, secret, address
            )
            if remembered is not None:
                return remembered
        return await run_in_threadpool(self._login, audience, username, secret, address, sign_in)

    def _login(
        self, audience: Audience, username: str, secret: str, address: str | None, sign_in: SignIn
    ) -> Identity:
        return self.auth.login(username, secret, address, via=audience.value, sign_in=sign_in)

    async def _registry_token(self, token: str) -> Resolved:
        known = self.auth.issuer.already_verified(token)
        if known is not None and known.token_id is None:
            # Verified before and tied to no access token that could be revoked: no thread hop needed.
            claims = known
        else:
            try:
                claims = await run_in_threadpool(self.auth.verify_bearer, token)
            except TokenInvalid as exc:
                raise CredentialRefused(f"invalid token: {exc}", invalid_token=True) from exc
        if claims.user_id is not None:
            await self._check_standing(claims.user_id, claims.subject)
        identity = Identity(
            user_id=claims.user_id, name=claims.subject or None, credential=Credential.REGISTRY_TOKEN
        )
        return Resolved(identity, claims)

    async def _check_standing(self, user_id: int, name: str) -> None:
        standing = self.standing.known(user_id)
        if standing is None:
            standing = await short_read(self.inline_reads, self.standing.read, user_id)
        if standing is Standing.DEACTIVATED:
            raise AccountDisabled(name)
        if standing is Standing.GONE:
            raise CredentialRefused("invalid token: its user no longer exists", invalid_token=True)

    async def _api_bearer(self, token: str) -> Identity:
        if token.startswith(f"{REFRESH_TOKEN_PREFIX}_"):
            raise CredentialRefused("a refresh token only buys registry tokens at /auth/token")
        if not looks_like_access_token(token):
            raise CredentialRefused(_REGISTRY_ONLY)
        identity = await run_in_threadpool(self.auth.credentials.authenticate_access_token, None, token)
        if identity is None:
            self.auth.throttle.counters.add(failures=1)
            raise CredentialRefused("invalid, expired or revoked access token")
        return identity

    async def _session(self, cookie: str) -> Resolved:
        found = await run_in_threadpool(self.auth.credentials.session, cookie)
        if found is None:
            raise CredentialRefused("the session has expired; log in again")
        return Resolved(found[0], csrf_token=found[1])
