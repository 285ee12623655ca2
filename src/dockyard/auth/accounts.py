"""Users as access control sees them: creating, changing and deleting accounts, passwords and sign-in.

Every mutating method takes the acting identity (None: the trusted command line), checks it with the policy
and records the change in the audit log in the transaction that makes it; SQL lives in
dockyard.db.accounts. Organizations and teams: dockyard.auth.organizations; grants: dockyard.auth.grants;
repositories: dockyard.content.repositories.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from pathlib import Path

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from dockyard.auth import passwords
from dockyard.auth import policy as p
from dockyard.auth.errors import (
    AccountDisabled,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from dockyard.auth.identity import FreshPassword, Identity
from dockyard.config import Settings
from dockyard.db import accounts as q
from dockyard.db import repositories as rq
from dockyard.db.engine import Database
from dockyard.events.audit import CLI, AuditLog

log = logging.getLogger(__name__)

_ACCOUNT_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
BOOTSTRAP_ADMIN = "admin"
# Clients sending Basic credentials on every /v2/ request would pay a full argon2id check each time.
_VERIFIED_TTL = 300.0
_VERIFIED_MAX = 4096


def check_account_name(name: str, field: str = "name") -> str:
    """Account names double as repository namespaces: lowercase, digits and single separators."""
    if not 2 <= len(name) <= 64 or not _ACCOUNT_NAME.fullmatch(name):
        raise InvalidInput(
            "names have 2 to 64 lowercase letters or digits, separated by single '.', '_' or '-'", field
        )
    return name


def require_admin(actor: Identity | None) -> None:
    """Forbidden unless the actor is a system administrator (or the command line, `None`)."""
    if actor is not None and not p.may_administer(actor):
        raise Forbidden("only system administrators may do this")


def user_in(conn: Connection, name: str, field: str = "name") -> q.AccountRow:
    """The user of that name, or NotFound."""
    row = q.account_by_name(conn, name)
    if row is None or row.kind != q.USER:
        raise NotFound(f"no user named {name}", field)
    return row


class AccountService:
    """Users: accounts, administrators, passwords, sign-in."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit
        # Recently verified (user, password) pairs, keyed by an HMAC under a per-process random key and
        # bound to the stored hash: a password changed anywhere no longer matches.
        self._verified_key = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[str, float]] = {}
        self._verified_lock = threading.Lock()

    def create_user(
        self, actor: Identity | None, name: str, password: str, *, is_admin: bool = False, full_name: str = ""
    ) -> q.AccountRow:
        """Create a local user. `actor=None` is the command line, which is trusted."""
        require_admin(actor)
        return self._insert_user(actor, name, password, is_admin=is_admin, full_name=full_name, audited=True)

    def _insert_user(
        self,
        actor: Identity | None,
        name: str,
        password: str,
        *,
        is_admin: bool,
        full_name: str,
        audited: bool,
    ) -> q.AccountRow:
        check_account_name(name)
        self._check_password(password)
        hashed = passwords.hash_password(password)
        with self.db.write() as conn:
            if q.account_by_name(conn, name) is not None:
                raise Conflict(f"the name {name} is taken", "name")
            account_id = q.insert_account(
                conn, name, q.USER, password_hash=hashed, is_admin=is_admin, full_name=full_name
            )
            row = q.account_by_id(conn, account_id)
            if audited:
                self.audit.add(conn, "user.create", actor=actor or CLI, target=name, is_admin=is_admin)
        assert row is not None
        return row

    def user(self, name: str) -> q.AccountRow:
        """The user with this name, or NotFound."""
        with self.db.read() as conn:
            row = q.account_by_name(conn, name)
        if row is None or row.kind != q.USER:
            raise NotFound(f"no user named {name}")
        return row

    def account(self, name: str) -> q.AccountRow:
        """The user or organization with this name, or NotFound."""
        with self.db.read() as conn:
            row = q.account_by_name(conn, name)
        if row is None:
            raise NotFound(f"no account named {name}")
        return row

    def list_accounts(
        self, actor: Identity, kind: str | None = None, after: str | None = None, limit: int | None = None
    ) -> list[q.AccountRow]:
        """Every account (administrators), or organizations (anyone authenticated); by name, after `after`,
        at most `limit`."""
        if kind != q.ORG:
            require_admin(actor)
        with self.db.read() as conn:
            return q.list_accounts(conn, kind, after, limit)

    def view_user(self, actor: Identity, name: str) -> q.AccountRow:
        """A user as the actor may see them: their own account, or any for administrators (NotFound
        otherwise, as for a user that does not exist)."""
        if not p.may_view_account(actor, name):
            raise NotFound(f"no user named {name}")
        return self.user(name)

    def update_user(
        self,
        actor: Identity,
        name: str,
        *,
        is_admin: bool | None = None,
        is_active: bool | None = None,
        full_name: str | None = None,
        password: str | None = None,
    ) -> q.AccountRow:
        """Change what is given of a user's administrator and active flags, display name and password
        (system administrators only, even for their own account)."""
        if not p.may_administer(actor):
            raise Forbidden("only system administrators may change users")
        if is_admin is not None:
            self.set_admin(actor, name, is_admin)
        if is_active is not None:
            self.set_active(actor, name, is_active)
        if full_name is not None:
            self.set_full_name(actor, name, full_name)
        if password is not None:
            self.set_password(actor, name, password)
        return self.user(name)

    def set_admin(self, actor: Identity | None, name: str, is_admin: bool) -> None:
        """Make a user a system administrator, or not; the last active administrator stays one."""
        require_admin(actor)
        with self.db.write() as conn:
            row = user_in(conn, name)
            if row.is_admin and not is_admin and q.count_admins(conn) <= 1:
                raise Conflict("cannot remove the last system administrator", "is_admin")
            q.update_account(conn, row.id, is_admin=is_admin)
            action = "user.admin.grant" if is_admin else "user.admin.revoke"
            self.audit.add(conn, action, actor=actor or CLI, target=name)

    def set_active(self, actor: Identity | None, name: str, active: bool) -> None:
        """Allow or forbid a user to log in."""
        require_admin(actor)
        with self.db.write() as conn:
            row = user_in(conn, name)
            if row.is_admin and not active and q.count_admins(conn) <= 1:
                raise Conflict("cannot deactivate the last system administrator", "is_active")
            q.update_account(conn, row.id, is_active=active)
            if not active:
                q.revoke_refresh_tokens(conn, row.id)
            elif not row.is_active:
                # Sessions left from before the deactivation (kept so their holder is told why) do not
                # come back to life: the user signs in anew.
                q.delete_user_sessions(conn, row.id)
            self.audit.add(conn, "user.enable" if active else "user.disable", actor=actor or CLI, target=name)

    def set_password(
        self, actor: Identity | None, name: str, password: str, fresh: FreshPassword | None = None
    ) -> None:
        """Set a user's password (administrators, or the user for themselves); ends their refresh tokens,
        and on a reset by someone else their browser sessions too.
        Changing one's own needs the current password: sent with this request, or confirmed (`fresh`)."""
        if actor is not None and not (
            p.may_administer(actor) or (actor.name == name and p.may_manage_self(actor))
        ):
            raise Forbidden("only administrators may set other users' passwords")
        if actor is not None and actor.name == name and not p.may_change_own_password(actor):
            raise Forbidden("passwords are changed with the password, not with an access token")
        if actor is not None and actor.name == name and not p.proved_password(actor, fresh):
            raise Unauthenticated(
                "changing your own password needs your current password (PUT /api/v1/me/password)",
                "current_password",
            )
        self._check_password(password)
        hashed = passwords.hash_password(password)
        with self.db.write() as conn:
            row = user_in(conn, name)
            q.update_account(conn, row.id, password_hash=hashed)
            q.revoke_refresh_tokens(conn, row.id)
            # Their own password is changed; another's is reset.
            own = actor is not None and actor.name == name
            if not own:
                # A reset (a forgotten or compromised password) signs the user out everywhere.
                q.delete_user_sessions(conn, row.id)
            self.audit.add(
                conn,
                "user.password.change" if own else "user.password.reset",
                actor=actor or CLI,
                target=name,
            )

    def set_full_name(self, actor: Identity, name: str, full_name: str) -> None:
        """Change the display name of an account (the user themselves, or an administrator)."""
        if not (p.may_administer(actor) or (actor.name == name and p.may_manage_self(actor))):
            raise Forbidden("you may only change your own settings")
        if len(full_name) > 255:
            raise InvalidInput("at most 255 characters", "full_name")
        with self.db.write() as conn:
            q.update_account(conn, user_in(conn, name).id, full_name=full_name)

    def delete_account(self, actor: Identity, name: str) -> None:
        """Remove a user or organization (administrators). Refused while its namespace holds repositories:
        an account created later under the same name would otherwise inherit them."""
        require_admin(actor)
        with self.db.write() as conn:
            row = q.account_by_name(conn, name)
            if row is None:
                raise NotFound(f"no account named {name}")
            if row.is_admin and q.count_admins(conn) <= 1:
                raise Conflict("cannot delete the last system administrator")
            held = rq.all_repository_names(conn, name)
            if held:
                listed = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
                raise Conflict(f"{name} still holds repositories ({listed}); delete them first", "name")
            q.delete_account(conn, row.id)
            self.audit.add(
                conn, "user.delete" if row.kind == q.USER else "org.delete", actor=actor, target=name
            )

    def authenticate(self, name: str, password: str) -> Identity | None:
        """The identity for a user name and password, or None. Spends the same time for unknown users."""
        with self.db.read() as conn:
            row = q.account_by_name(conn, name)
        return self.verify_row_password(row, password)

    def verify_row_password(self, row: q.AccountRow | None, password: str) -> Identity | None:
        """`authenticate` for an account row the caller has just read."""
        if row is None or row.kind != q.USER or row.password_hash is None:
            passwords.dummy_verify(password)
            return None
        if not row.is_active:
            # Said only to whoever knows the password: a wrong one learns nothing about the account.
            if passwords.verify_password(row.password_hash, password):
                raise AccountDisabled(row.name)
            return None
        remembered = self.remembered_password(row, password)
        if remembered is not None:
            return remembered
        if not passwords.verify_password(row.password_hash, password):
            return None
        with self._verified_lock:
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.clear()
            self._verified[self._verified_id(row, password)] = (
                row.password_hash,
                time.monotonic() + _VERIFIED_TTL,
            )
        if passwords.needs_rehash(row.password_hash):
            new_hash = passwords.hash_password(password)
            # Without a quorum the old hash stays: the next login rehashes.
            self.db.write_if_possible(
                "password_rehash", lambda conn: q.update_account(conn, row.id, password_hash=new_hash)
            )
        return Identity(user_id=row.id, name=row.name, is_admin=row.is_admin)

    def remembered_password(self, row: q.AccountRow, password: str) -> Identity | None:
        """The identity when this password was verified lately against the row's current hash; no argon2,
        so it may run on the event loop. None when the account is not an active user or nothing is known."""
        if row.kind != q.USER or not row.is_active or row.password_hash is None:
            return None
        with self._verified_lock:
            cached = self._verified.get(self._verified_id(row, password))
        if (
            cached is not None
            and cached[1] > time.monotonic()
            and hmac.compare_digest(cached[0], row.password_hash)
        ):
            return Identity(user_id=row.id, name=row.name, is_admin=row.is_admin)
        return None

    def _verified_id(self, row: q.AccountRow, password: str) -> bytes:
        return hmac.new(self._verified_key, f"{row.id}\0{password}".encode(), hashlib.sha256).digest()

    def identity(
        self, user_id: int, *, token_id: int | None = None, read_only: bool = False
    ) -> Identity | None:
        """The current identity of an active user (None when deleted or deactivated)."""
        with self.db.read() as conn:
            row = q.account_by_id(conn, user_id)
        if row is None or row.kind != q.USER or not row.is_active:
            return None
        return Identity(
            user_id=row.id, name=row.name, is_admin=row.is_admin, token_id=token_id, read_only=read_only
        )

    def bootstrap_admin(self, settings: Settings) -> str | None:
        """On first start, create the `admin` account. Returns the password when it was generated here."""
        password = _configured_admin_password(settings)
        generated = password is None
        if password is None:
            password = secrets.token_urlsafe(18)
        with self.db.read() as conn:
            if q.list_accounts(conn, q.USER):
                return None
        try:
            self._insert_user(
                None, BOOTSTRAP_ADMIN, password, is_admin=True, full_name="Administrator", audited=False
            )
        except (Conflict, IntegrityError):
            # Another replica created it at the same moment.
            return None
        return password if generated else None

    def _check_password(self, password: str) -> None:
        try:
            passwords.check_password_rules(password)
        except passwords.WeakPassword as exc:
            raise InvalidInput(str(exc), "password") from exc


def _configured_admin_password(settings: Settings) -> str | None:
    if settings.admin_password is not None:
        return settings.admin_password.get_secret_value()
    if settings.admin_password_file is not None:
        path = Path(settings.admin_password_file)
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read admin_password_file {path}: {exc.strerror}") from exc
        if not value:
            raise ValueError(f"admin_password_file {path} is empty")
        return value
    return None
