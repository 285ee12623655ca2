"""Checking credentials: passwords and personal access tokens (through the login throttle), registry tokens.

Which credentials a surface accepts, and how a request carries them, is the resolver's business
(dockyard.auth.resolver); this module checks one credential once it is known.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import replace
from enum import StrEnum

from starlette.requests import HTTPConnection

from dockyard.auth import policy as p
from dockyard.auth.accounts import AccountService
from dockyard.auth.credentials import CredentialService, looks_like_access_token
from dockyard.auth.errors import AccountDisabled, CredentialRefused, Forbidden, Unauthenticated
from dockyard.auth.identity import ANONYMOUS, Credential, FreshPassword, Identity
from dockyard.auth.throttle import LoginThrottle
from dockyard.auth.tokens import Claims, TokenInvalid, TokenIssuer
from dockyard.events.audit import FAILURE, AuditLog

MAX_CREDENTIAL_LENGTH = 4096


def client_address(conn: HTTPConnection) -> str | None:
    """The client's address: the peer's, or the one a trusted proxy forwarded (dockyard.auth.proxies)."""
    return conn.client.host if conn.client else None


def parse_basic(header: str) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic ...` value, or None when it is not Basic."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    if len(value) > MAX_CREDENTIAL_LENGTH:
        raise CredentialRefused("credentials are too long")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise CredentialRefused("malformed Basic credentials") from exc
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        raise CredentialRefused("malformed Basic credentials")
    return user, password


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer ...` value."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class SignIn(StrEnum):
    """Whether a successful login is recorded in the audit log as a sign-in."""

    ALWAYS = "always"  # an explicit sign-in: a browser session, `docker login` (a refresh token asked for)
    AFTER_GAP = "after_gap"  # a client that logs in for each token: once, then again after a quiet gap
    NEVER = "never"  # credentials sent with every request (Basic on /v2/ and /api/v1)


# A client's logins closer together than this to the account's last audited one are the same sign-in.
SIGN_IN_GAP_SECONDS = 3600


class Authenticator:
    """Checks credentials of every kind; blocking calls, to be run off the event loop."""

    def __init__(
        self,
        accounts: AccountService,
        credentials: CredentialService,
        issuer: TokenIssuer,
        throttle: LoginThrottle,
        audit: AuditLog,
    ) -> None:
        self.accounts = accounts
        self.credentials = credentials
        self.issuer = issuer
        self.throttle = throttle
        self.audit = audit

    def login(
        self, username: str, secret: str, address: str | None, *, via: str, sign_in: SignIn = SignIn.ALWAYS
    ) -> Identity:
        """A user name with a password or personal access token. Raises Throttled or Unauthenticated.

        The attempt is counted by the throttle before the secret is checked. Refused attempts are counted
        (`throttle.counters`), not written to the audit log one by one; `sign_in` says which successes are.
        """
        if len(username) > 256 or len(secret) > MAX_CREDENTIAL_LENGTH:
            self.throttle.counters.add(failures=1)
            raise Unauthenticated("invalid credentials")
        reservation = self.throttle.reserve(username, address)
        try:
            if looks_like_access_token(secret):
                identity = self.credentials.authenticate_access_token(username, secret)
            else:
                identity = self.accounts.verify_row_password(reservation.account, secret)
                if identity is not None:
                    identity = replace(identity, credential=Credential.PASSWORD)
        except AccountDisabled:
            self.throttle.succeeded(reservation)
            raise
        if identity is None:
            if self.throttle.failed(reservation):
                self.audit.record("login.lockout", actor=username, address=address, outcome=FAILURE, via=via)
            raise Unauthenticated("invalid username or password")
        now = time.time()
        last = reservation.account.last_login_at if reservation.account is not None else None
        record = sign_in is SignIn.ALWAYS or (
            sign_in is SignIn.AFTER_GAP and (last is None or now - last >= SIGN_IN_GAP_SECONDS)
        )
        self.throttle.succeeded(reservation, signed_in_at=now if record else None)
        if record:
            self.audit.record("login", actor=identity, address=address, via=via, method=identity.credential)
        return identity

    def remembered_login(self, username: str, secret: str, address: str | None) -> Identity | None:
        """A password login settled by one indexed read, with no argon2 and no write, or None when `login`
        must decide: the pair of account and address has no failures (so no lock-out applies and none
        needs clearing), and this password was verified lately against the account's current hash (so a
        changed password, a disabled or deleted account count at once). Never audited.
        """
        if len(username) > 256 or len(secret) > MAX_CREDENTIAL_LENGTH or looks_like_access_token(secret):
            return None
        state = self.throttle.state(username, address)
        if state.account is None or not self.throttle.may_skip_reservation(state):
            return None
        identity = self.accounts.remembered_password(state.account, secret)
        return replace(identity, credential=Credential.PASSWORD) if identity is not None else None

    def confirm_password(
        self, identity: Identity, password: str | None, address: str | None
    ) -> FreshPassword | None:
        """Check `current_password` for a sensitive change of the caller's own account, which needs one
        unless this very request was authenticated with the password (Basic): returns the evidence the
        services ask for. Throttled like any login. Access tokens make no such change at all: one stolen
        token must not lead to another, or to the password."""
        if identity.token_id is not None:
            raise Forbidden("this change is made with the password or a session, not with an access token")
        if password is None:
            if p.proved_password(identity):
                return None
            raise Unauthenticated(
                "this change needs your current password (current_password)", "current_password"
            )
        if identity.name is None or identity.anonymous:
            raise Unauthenticated("authentication required")
        reservation = self.throttle.reserve(identity.name, address)
        if reservation.account is None or reservation.account.id != identity.user_id:
            self.throttle.failed(reservation)
            raise Unauthenticated("the current password is wrong", "current_password")
        if self.accounts.verify_row_password(reservation.account, password) is None:
            self.throttle.failed(reservation)
            raise Unauthenticated("the current password is wrong", "current_password")
        self.throttle.succeeded(reservation)
        return FreshPassword(reservation.account.id)

    def change_own_password(
        self, identity: Identity, current_password: str | None, new_password: str, address: str | None
    ) -> None:
        """Change the caller's own password, confirmed with the current one (`confirm_password`); a wrong
        or missing current password is recorded as a failed `user.password.change`, whichever surface
        asked, and the change as a successful one (by the account service)."""
        assert identity.name is not None
        try:
            fresh = self.confirm_password(identity, current_password, address)
        except Unauthenticated:
            self.audit.record(
                "user.password.change", actor=identity, address=address, target=identity.name, outcome=FAILURE
            )
            raise
        self.accounts.set_password(identity, identity.name, new_password, fresh)

    def from_claims(self, claims: Claims) -> Identity:
        """The identity a verified registry token stands for; anonymous when the user is gone."""
        if claims.user_id is None:
            return ANONYMOUS
        if claims.token_id is not None and not self.credentials.access_token_active(claims.token_id):
            raise TokenInvalid("the access token behind this token was revoked")
        identity = self.accounts.identity(
            claims.user_id, token_id=claims.token_id, read_only=claims.read_only
        )
        if identity is None:
            raise TokenInvalid("the user of this token no longer exists or is deactivated")
        return replace(identity, credential=Credential.REGISTRY_TOKEN)

    def verify_bearer(self, token: str) -> Claims:
        """Verify a registry token, and that the access token it was minted with still stands."""
        if len(token) > MAX_CREDENTIAL_LENGTH * 4:
            raise TokenInvalid("token too long")
        claims = self.issuer.verify(token)
        if claims.token_id is not None and not self.credentials.access_token_active(claims.token_id):
            raise TokenInvalid("the access token behind this token was revoked")
        return claims
