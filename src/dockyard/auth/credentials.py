"""Personal access tokens, refresh tokens and browser sessions: random secrets kept only as hashes.

Each secret handed out reads `<prefix>_<public id>_<secret>`: the public id finds the row, the secret is
compared in constant time with the stored SHA-256.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy.engine import Connection

from dockyard.auth import passwords
from dockyard.auth import policy as p
from dockyard.auth.accounts import AccountService
from dockyard.auth.errors import AccountDisabled, Forbidden, InvalidInput, NotFound, Unauthenticated
from dockyard.auth.identity import Credential, FreshPassword, Identity
from dockyard.db import accounts as q
from dockyard.db.engine import Database
from dockyard.events.audit import AuditLog

ACCESS_TOKEN_PREFIX = "dyp"  # noqa: S105 (a prefix, not a secret)
REFRESH_TOKEN_PREFIX = "dyr"  # noqa: S105 (a prefix, not a secret)
SESSION_PREFIX = "dys"
_FORMAT = re.compile(r"(dy[prs])_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_TOKEN_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
# Writing last-used on every request would make each pull a write; a minute's precision is enough.
_TOUCH_INTERVAL = 60.0


def _split(secret: str, prefix: str) -> tuple[str, str] | None:
    match = _FORMAT.fullmatch(secret)
    if match is None or match.group(1) != prefix:
        return None
    return match.group(2), match.group(3)


def _mint(prefix: str) -> tuple[str, str, str]:
    """(public id, secret hash, the full string to hand out)."""
    public_id, secret = passwords.new_public_id(), passwords.new_secret()
    return public_id, passwords.hash_secret(secret), f"{prefix}_{public_id}_{secret}"


def looks_like_access_token(secret: str) -> bool:
    """Whether a password field holds a personal access token rather than a password."""
    return secret.startswith(f"{ACCESS_TOKEN_PREFIX}_")


@dataclass(frozen=True)
class AccessToken:
    """A personal access token as its owner sees it (never the secret, except once at creation)."""

    id: int
    public_id: str
    name: str
    read_only: bool
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None


def _view(row: q.TokenRow) -> AccessToken:
    return AccessToken(
        id=row.id,
        public_id=row.public_id,
        name=row.name,
        read_only=row.read_only,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


class CredentialService:
    """Creates, checks and revokes access tokens, refresh tokens and sessions; creating and revoking are
    audited here, in the transaction that makes the change."""

    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        refresh_ttl_seconds: int,
        session_ttl_seconds: int,
        audit: AuditLog,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.audit = audit
        self.refresh_ttl_seconds = refresh_ttl_seconds
        self.session_ttl_seconds = session_ttl_seconds

    # Personal access tokens

    def create_access_token(
        self,
        actor: Identity,
        name: str,
        *,
        read_only: bool = False,
        expires_at: float | None = None,
        fresh: FreshPassword | None = None,
    ) -> tuple[AccessToken, str]:
        """Create a token for the actor; the secret is returned here and never again. A caller that did
        not send its password with this request (a session) must have confirmed it (`fresh`)."""
        if not p.may_manage_self(actor) or actor.token_id is not None or actor.user_id is None:
            raise Forbidden("access tokens are created with a password or session, not with another token")
        if not p.proved_password(actor, fresh):
            raise Unauthenticated(
                "creating an access token needs your current password (current_password)", "current_password"
            )
        if not _TOKEN_NAME.fullmatch(name):
            raise InvalidInput("1 to 100 printable characters", "name")
        if expires_at is not None and expires_at <= time.time():
            raise InvalidInput("the expiry must be in the future", "expires_at")
        public_id, secret_hash, secret = _mint(ACCESS_TOKEN_PREFIX)
        with self.db.write() as conn:
            token_id = q.insert_access_token(
                conn, actor.user_id, public_id, secret_hash, name, read_only, expires_at
            )
            row = q.access_token_by_id(conn, token_id)
            self.audit.add(
                conn, "token.create", actor=actor, target=public_id, name=name, read_only=read_only
            )
        assert row is not None
        return _view(row), secret

    def access_tokens(
        self, actor: Identity, before_id: int | None = None, limit: int | None = None
    ) -> list[AccessToken]:
        """The actor's own tokens, newest first, older than `before_id`, at most `limit`."""
        if actor.user_id is None:
            raise Forbidden("log in first")
        with self.db.read() as conn:
            return [_view(row) for row in q.access_tokens_of(conn, actor.user_id, before_id, limit)]

    def revoke_access_token(self, actor: Identity, public_id: str) -> AccessToken:
        """Revoke one of the actor's tokens (administrators: anyone's), effective immediately."""
        with self.db.write() as conn:
            row = q.access_token_by_public_id(conn, public_id)
            if row is None or (row.user_id != actor.user_id and not p.may_administer(actor)):
                raise NotFound(f"no access token {public_id}")
            if actor.read_only:
                raise Forbidden("a read-only token cannot revoke tokens")
            q.revoke_access_token(conn, row.id)
            revoked = q.access_token_by_id(conn, row.id)
            self.audit.add(conn, "token.revoke", actor=actor, target=public_id, name=row.name)
        assert revoked is not None
        return _view(revoked)

    def authenticate_access_token(self, username: str | None, secret: str) -> Identity | None:
        """The identity behind an access token (and its owner's name, when given), or None when wrong,
        revoked or expired. Raises AccountDisabled for a right token of a deactivated account."""
        parts = _split(secret, ACCESS_TOKEN_PREFIX)
        if parts is None:
            return None
        with self.db.read() as conn:
            row = q.access_token_by_public_id(conn, parts[0])
            owner = q.account_by_id(conn, row.user_id) if row is not None else None
        now = time.time()
        if row is None or not passwords.secret_matches(row.secret_hash, parts[1]) or not _usable(row, now):
            return None
        if owner is None or owner.kind != q.USER or (username is not None and owner.name != username):
            return None
        if not owner.is_active:
            raise AccountDisabled(owner.name)
        if row.last_used_at is None or now - row.last_used_at > _TOUCH_INTERVAL:
            self.db.write_if_possible(
                "last_used", lambda conn: q.touch_access_token(conn, row.id, now), durable=False
            )
        return Identity(
            user_id=owner.id,
            name=owner.name,
            is_admin=owner.is_admin,
            token_id=row.id,
            read_only=row.read_only,
            credential=Credential.ACCESS_TOKEN,
        )

    def access_token_active(self, token_id: int) -> bool:
        """Whether a token is still usable: registry tokens minted with it die with it."""
        with self.db.read() as conn:
            row = q.access_token_by_id(conn, token_id)
        return row is not None and _usable(row, time.time())

    # Refresh tokens (docker login's identity token)

    def issue_refresh_token(self, identity: Identity, client_id: str) -> str:
        """A long-lived token that buys registry tokens without the password."""
        assert identity.user_id is not None
        public_id, secret_hash, secret = _mint(REFRESH_TOKEN_PREFIX)
        with self.db.write() as conn:
            q.insert_refresh_token(
                conn,
                identity.user_id,
                public_id,
                secret_hash,
                client_id[:100],
                identity.token_id,
                time.time() + self.refresh_ttl_seconds,
            )
        return secret

    def use_refresh_token(self, secret: str) -> Identity | None:
        """The identity a refresh token stands for, or None when unknown, revoked or expired."""
        lookup = q.refresh_token_by_public_id
        found = self._holder(secret, REFRESH_TOKEN_PREFIX, lookup, Credential.REFRESH_TOKEN)
        if found is None:
            return None
        row, identity = found
        now = time.time()
        if row.last_used_at is None or now - row.last_used_at > _TOUCH_INTERVAL:
            self.db.write_if_possible("last_used", lambda conn: q.touch_refresh_token(conn, row.id, now))
        return identity

    def revoke_refresh_tokens(self, actor: Identity) -> int:
        """Log the actor out of every docker client (all refresh tokens)."""
        if actor.user_id is None or not p.may_manage_self(actor):
            raise Forbidden("log in first")
        with self.db.write() as conn:
            count = q.revoke_refresh_tokens(conn, actor.user_id)
            self.audit.add(conn, "token.refresh.revoke", actor=actor, target=actor.name or "", count=count)
        return count

    # Sessions

    def create_session(self, identity: Identity) -> tuple[str, str]:
        """A new browser session: (cookie value, CSRF token). One signed in with an access token keeps
        that token's rights (read-only, no token management) and ends when the token does."""
        assert identity.user_id is not None
        public_id, secret_hash, secret = _mint(SESSION_PREFIX)
        csrf = secrets.token_urlsafe(32)
        with self.db.write() as conn:
            q.delete_expired_sessions(conn, time.time())
            q.insert_session(
                conn,
                identity.user_id,
                public_id,
                secret_hash,
                csrf,
                time.time() + self.session_ttl_seconds,
                identity.token_id,
            )
        return secret, csrf

    def session(self, cookie: str) -> tuple[Identity, str] | None:
        """(identity, CSRF token) of a live session cookie. Raises AccountDisabled for a live session of
        a deactivated user (only its holder learns it: the secret was right)."""
        found = self._holder(cookie, SESSION_PREFIX, q.session_by_public_id, Credential.SESSION)
        return (found[1], found[0].csrf_token) if found is not None else None

    def _holder(
        self,
        secret: str,
        prefix: str,
        by_public_id: Callable[[Connection, str], q.TokenRow | None],
        credential: Credential,
    ) -> tuple[q.TokenRow, Identity] | None:
        """The row of a live refresh token or session and the active user it stands for; None when the
        secret is wrong, the row expired or revoked, the access token it was obtained with is no longer
        usable, or the user is gone. AccountDisabled when the user is deactivated."""
        parts = _split(secret, prefix)
        if parts is None:
            return None
        with self.db.read() as conn:
            row = by_public_id(conn, parts[0])
            pat = q.access_token_by_id(conn, row.access_token_id) if row and row.access_token_id else None
        now = time.time()
        if row is None or not passwords.secret_matches(row.secret_hash, parts[1]) or not _usable(row, now):
            return None
        if row.access_token_id is not None and (pat is None or not _usable(pat, now)):
            return None
        identity = self.accounts.identity(
            row.user_id, token_id=row.access_token_id, read_only=pat.read_only if pat else False
        )
        if identity is None:
            self._refuse_if_deactivated(row.user_id)
            return None
        return row, replace(identity, credential=credential)

    def _refuse_if_deactivated(self, user_id: int) -> None:
        """AccountDisabled when the user exists but is deactivated (the caller proved the secret)."""
        with self.db.read() as conn:
            owner = q.account_by_id(conn, user_id)
        if owner is not None and owner.kind == q.USER and not owner.is_active:
            raise AccountDisabled(owner.name)

    def end_session(self, cookie: str) -> None:
        """Log out a session."""
        parts = _split(cookie, SESSION_PREFIX)
        if parts is None:
            return
        with self.db.write() as conn:
            row = q.session_by_public_id(conn, parts[0])
            if row is not None and passwords.secret_matches(row.secret_hash, parts[1]):
                q.delete_session(conn, row.id)


def _usable(row: q.TokenRow, now: float) -> bool:
    return row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
