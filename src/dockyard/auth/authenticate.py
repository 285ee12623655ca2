"""Turning credentials into an identity: Basic (password or access token), bearer tokens, session cookies.

Every password check goes through the login throttle and failures go to the audit log.
"""

from __future__ import annotations

import base64
import binascii
import logging

from starlette.requests import HTTPConnection

from dockyard.auth.accounts import AccountService
from dockyard.auth.credentials import CredentialService, looks_like_access_token
from dockyard.auth.errors import Throttled, Unauthenticated
from dockyard.auth.identity import ANONYMOUS, Identity
from dockyard.auth.throttle import LoginThrottle
from dockyard.auth.tokens import Claims, TokenInvalid, TokenIssuer
from dockyard.events.audit import FAILURE, AuditLog

log = logging.getLogger(__name__)

MAX_CREDENTIAL_LENGTH = 4096


def client_address(conn: HTTPConnection) -> str | None:
    """The peer address of the request (the proxy's, behind a reverse proxy)."""
    return conn.client.host if conn.client else None


def parse_basic(header: str) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic ...` value, or None when it is not Basic."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    if len(value) > MAX_CREDENTIAL_LENGTH:
        raise Unauthenticated("credentials are too long")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthenticated("malformed Basic credentials") from exc
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        raise Unauthenticated("malformed Basic credentials")
    return user, password


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer ...` value."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


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
        self, username: str, secret: str, address: str | None, *, via: str, record: bool = True
    ) -> Identity:
        """A user name with a password or personal access token. Raises Throttled or Unauthenticated.

        `record=False` leaves successes out of the audit log (Basic on every /v2/ request would flood it);
        failures are always recorded.
        """
        if len(username) > 256 or len(secret) > MAX_CREDENTIAL_LENGTH:
            raise Unauthenticated("invalid credentials")
        state = self.throttle.state(username, address)
        try:
            self.throttle.raise_if_blocked(state)
        except Throttled as exc:
            self.audit.record(
                "login",
                actor=username,
                address=address,
                outcome="throttled",
                via=via,
                retry_after=exc.retry_after,
            )
            raise
        if looks_like_access_token(secret):
            identity = self.credentials.authenticate_access_token(username, secret)
            method = "access_token"
        else:
            identity = self.accounts.verify_row_password(state.account, secret)
            method = "password"
        if identity is None:
            delay = self.throttle.failure(username, address)
            self.audit.record(
                "login", actor=username, address=address, outcome=FAILURE, via=via, method=method
            )
            if delay:
                log.warning("login throttled for %s from %s for %d s", username, address, delay)
            raise Unauthenticated("invalid username or password")
        if state.account_has_failures:
            self.throttle.success(username)
        if record:
            self.audit.record("login", actor=identity, address=address, via=via, method=method)
        return identity

    def remembered_login(self, username: str, secret: str, address: str | None) -> Identity | None:
        """A password login settled by one indexed read, with no argon2 and no write, or None when `login`
        must decide: the account and address are not locked out, the account has no failures to clear,
        and this password was verified lately against the account's current hash (so a changed password,
        a disabled or deleted account count at once). Successes are not audited, as `login(record=False)`.
        """
        if len(username) > 256 or len(secret) > MAX_CREDENTIAL_LENGTH or looks_like_access_token(secret):
            return None
        state = self.throttle.state(username, address)
        if state.account is None or state.blocked_until or state.account_has_failures:
            return None
        return self.accounts.remembered_password(state.account, secret)

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
            raise TokenInvalid("the user of this token no longer exists or is disabled")
        return identity

    def verify_bearer(self, token: str) -> Claims:
        """Verify a registry token, and that the access token it was minted with still stands."""
        if len(token) > MAX_CREDENTIAL_LENGTH * 4:
            raise TokenInvalid("token too long")
        claims = self.issuer.verify(token)
        if claims.token_id is not None and not self.credentials.access_token_active(claims.token_id):
            raise TokenInvalid("the access token behind this token was revoked")
        return claims
