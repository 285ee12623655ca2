"""Accounts, organizations, teams, grants and repositories as access control sees them: the rules.

Every mutating method takes the acting identity and checks it with the policy; SQL lives in
dockyard.db.accounts.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
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
from dockyard.content.errors import NameInvalid
from dockyard.content.names import validate_name
from dockyard.db import accounts as q
from dockyard.db import system_settings as sq
from dockyard.db.engine import Database

log = logging.getLogger(__name__)

_ACCOUNT_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_TEAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
VISIBILITIES = ("public", "private")
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


def check_team_name(name: str, field: str = "name") -> str:
    """Team names: letters, digits, '.', '_' and '-', up to 64."""
    if not _TEAM_NAME.fullmatch(name):
        raise InvalidInput("team names have 1 to 64 letters, digits, '.', '_' or '-'", field)
    return name


def check_repository_name(name: str, field: str = "name") -> str:
    """A repository name as the OCI Distribution specification defines it."""
    try:
        return validate_name(name)
    except NameInvalid as exc:
        raise InvalidInput(exc.message, field) from exc


def namespace_of(name: str) -> str | None:
    """The namespace of a repository: its first path component, or None for a top-level name."""
    head, sep, _ = name.partition("/")
    return head if sep else None


@dataclass(frozen=True)
class Repository:
    """A repository with the access facts the API shows."""

    name: str
    namespace: str | None
    visibility: str
    description: str
    created_at: float
    scan_on_push: bool


class AccountService:
    """Users, organizations, teams, members, grants and repository records."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.policy_settings = p.PolicySettings(
            anonymous_pull=settings.anonymous_pull, create_on_push=settings.create_on_push
        )
        # Recently verified (user, password) pairs, keyed by an HMAC under a per-process random key and
        # bound to the stored hash: a password changed anywhere no longer matches.
        self._verified_key = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[str, float]] = {}
        self._verified_lock = threading.Lock()

    # Users

    def create_user(
        self, actor: Identity | None, name: str, password: str, *, is_admin: bool = False, full_name: str = ""
    ) -> q.AccountRow:
        """Create a local user. `actor=None` is the command line, which is trusted."""
        self._require_admin(actor)
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

    def organizations_of(self, identity: Identity) -> list[str]:
        """Organizations the identity owns or belongs to through a team."""
        if identity.user_id is None:
            return []
        with self.db.read() as conn:
            return q.organizations_of(conn, identity.user_id)

    def list_accounts(
        self, actor: Identity, kind: str | None = None, after: str | None = None, limit: int | None = None
    ) -> list[q.AccountRow]:
        """Every account (administrators), or organizations (anyone authenticated); by name, after `after`,
        at most `limit`."""
        if kind != q.ORG:
            self._require_admin(actor)
        with self.db.read() as conn:
            return q.list_accounts(conn, kind, after, limit)

    def organizations_page(
        self, actor: Identity, after: str | None, limit: int
    ) -> list[tuple[q.AccountRow, list[str]]]:
        """Organizations by name with their owners, after `after`, at most `limit`."""
        with self.db.read() as conn:
            orgs = q.list_accounts(conn, q.ORG, after, limit)
            return [(org, q.owners(conn, org.id)) for org in orgs]

    def set_admin(self, actor: Identity | None, name: str, is_admin: bool) -> None:
        """Make a user a system administrator, or not; the last active administrator stays one."""
        self._require_admin(actor)
        with self.db.write() as conn:
            row = self._user_in(conn, name)
            if row.is_admin and not is_admin and q.count_admins(conn) <= 1:
                raise Conflict("cannot remove the last system administrator", "is_admin")
            q.update_account(conn, row.id, is_admin=is_admin)

    def set_active(self, actor: Identity | None, name: str, active: bool) -> None:
        """Allow or forbid a user to log in."""
        self._require_admin(actor)
        with self.db.write() as conn:
            row = self._user_in(conn, name)
            if row.is_admin and not active and q.count_admins(conn) <= 1:
                raise Conflict("cannot deactivate the last system administrator", "is_active")
            q.update_account(conn, row.id, is_active=active)
            if not active:
                q.revoke_refresh_tokens(conn, row.id)

    def set_password(
        self, actor: Identity | None, name: str, password: str, fresh: FreshPassword | None = None
    ) -> None:
        """Set a user's password (administrators, or the user for themselves); ends their refresh tokens.
        Changing one's own needs the current password: sent with this request, or confirmed (`fresh`)."""
        if actor is not None and not (
            p.may_administer(actor) or (actor.name == name and p.may_manage_self(actor))
        ):
            raise Forbidden("only administrators may set other users' passwords")
        if actor is not None and actor.name == name and not p.proved_password(actor, fresh):
            raise Unauthenticated(
                "changing your own password needs your current password (PUT /api/v1/me/password)",
                "current_password",
            )
        self._check_password(password)
        hashed = passwords.hash_password(password)
        with self.db.write() as conn:
            row = self._user_in(conn, name)
            q.update_account(conn, row.id, password_hash=hashed)
            q.revoke_refresh_tokens(conn, row.id)

    def set_full_name(self, actor: Identity, name: str, full_name: str) -> None:
        """Change the display name of an account (the user themselves, or an administrator)."""
        if not (p.may_administer(actor) or (actor.name == name and p.may_manage_self(actor))):
            raise Forbidden("you may only change your own settings")
        if len(full_name) > 255:
            raise InvalidInput("at most 255 characters", "full_name")
        with self.db.write() as conn:
            q.update_account(conn, self._user_in(conn, name).id, full_name=full_name)

    def delete_account(self, actor: Identity, name: str) -> None:
        """Remove a user or organization (administrators). Refused while its namespace holds repositories:
        an account created later under the same name would otherwise inherit them."""
        self._require_admin(actor)
        with self.db.write() as conn:
            row = q.account_by_name(conn, name)
            if row is None:
                raise NotFound(f"no account named {name}")
            if row.is_admin and q.count_admins(conn) <= 1:
                raise Conflict("cannot delete the last system administrator")
            held = q.all_repository_names(conn, name)
            if held:
                listed = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
                raise Conflict(f"{name} still holds repositories ({listed}); delete them first", "name")
            q.delete_account(conn, row.id)

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
            self.create_user(None, BOOTSTRAP_ADMIN, password, is_admin=True, full_name="Administrator")
        except (Conflict, IntegrityError):
            # Another replica created it at the same moment.
            return None
        return password if generated else None

    # Organizations

    def create_organization(
        self, actor: Identity, name: str, owners: list[str], full_name: str = ""
    ) -> q.AccountRow:
        """Create an organization (administrators) with its first owners."""
        self._require_admin(actor)
        check_account_name(name)
        with self.db.write() as conn:
            if q.account_by_name(conn, name) is not None:
                raise Conflict(f"the name {name} is taken", "name")
            owner_ids = [self._user_in(conn, owner, "owners").id for owner in owners]
            org_id = q.insert_account(conn, name, q.ORG, full_name=full_name)
            for owner_id in owner_ids:
                q.add_owner(conn, org_id, owner_id)
            row = q.account_by_id(conn, org_id)
        assert row is not None
        return row

    def organization(self, name: str) -> tuple[q.AccountRow, list[str]]:
        """An organization and its owners."""
        with self.db.read() as conn:
            org = self._org_in(conn, name)
            return org, q.owners(conn, org.id)

    def set_owner(self, actor: Identity, org: str, user: str, owner: bool) -> None:
        """Add or remove an owner of an organization."""
        with self.db.write() as conn:
            org_row = self._managed_org(conn, actor, org)
            user_row = self._user_in(conn, user, "user")
            if owner:
                q.add_owner(conn, org_row.id, user_row.id)
            elif not q.remove_owner(conn, org_row.id, user_row.id):
                raise NotFound(f"{user} is not an owner of {org}")

    # Teams

    def create_team(self, actor: Identity, org: str, name: str, description: str = "") -> q.TeamRow:
        """Create a team in an organization (its owners, or administrators)."""
        check_team_name(name)
        if len(description) > 1000:
            raise InvalidInput("at most 1000 characters", "description")
        with self.db.write() as conn:
            org_row = self._managed_org(conn, actor, org)
            if q.team_by_name(conn, org_row.id, name) is not None:
                raise Conflict(f"{org} already has a team named {name}", "name")
            q.insert_team(conn, org_row.id, name, description)
            team = q.team_by_name(conn, org_row.id, name)
        assert team is not None
        return team

    def teams(
        self, actor: Identity, org: str, after: str | None = None, limit: int | None = None
    ) -> list[q.TeamRow]:
        """The teams of an organization (visible to its owners, members and administrators), by name, after
        `after`, at most `limit`."""
        with self.db.read() as conn:
            org_row = self._org_in(conn, org)
            self._require_org_visible(conn, actor, org_row)
            return q.list_teams(conn, org_row.id, after, limit)

    def team_members(
        self, actor: Identity, org: str, name: str, after: str | None, limit: int
    ) -> tuple[q.TeamRow, list[str], str | None]:
        """A team, a page of its members (by name, after `after`, at most `limit`), its namespace grant."""
        with self.db.read() as conn:
            org_row = self._org_in(conn, org)
            self._require_org_visible(conn, actor, org_row)
            team = self._team_in(conn, org_row, name)
            return team, q.members(conn, team.id, after, limit), q.namespace_grant(conn, team.id)

    def team(self, actor: Identity, org: str, name: str) -> tuple[q.TeamRow, list[str], str | None]:
        """A team, its members and its namespace grant."""
        with self.db.read() as conn:
            org_row = self._org_in(conn, org)
            self._require_org_visible(conn, actor, org_row)
            team = self._team_in(conn, org_row, name)
            return team, q.members(conn, team.id), q.namespace_grant(conn, team.id)

    def delete_team(self, actor: Identity, org: str, name: str) -> None:
        """Remove a team, its memberships and grants."""
        with self.db.write() as conn:
            org_row = self._managed_org(conn, actor, org)
            q.delete_team(conn, self._team_in(conn, org_row, name).id)

    def set_member(self, actor: Identity, org: str, team: str, user: str, member: bool) -> None:
        """Add a user to a team, or remove them."""
        with self.db.write() as conn:
            org_row = self._managed_org(conn, actor, org)
            team_row = self._team_in(conn, org_row, team)
            user_row = self._user_in(conn, user, "user")
            if member:
                q.add_member(conn, team_row.id, user_row.id)
            elif not q.remove_member(conn, team_row.id, user_row.id):
                raise NotFound(f"{user} is not a member of {org}/{team}")

    def set_namespace_grant(self, actor: Identity, org: str, team: str, level: str | None) -> None:
        """Grant a team a level on every repository of its organization (or withdraw it with None)."""
        parsed = _parse_level(level) if level is not None else None
        with self.db.write() as conn:
            org_row = self._managed_org(conn, actor, org)
            team_row = self._team_in(conn, org_row, team)
            q.set_namespace_grant(conn, team_row.id, parsed.label if parsed else None)

    def team_repositories(
        self, actor: Identity, org: str, team: str, after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, str]]:
        """(repository, level) for the repository grants of a team, by name, after `after`, at most
        `limit`."""
        with self.db.read() as conn:
            org_row = self._org_in(conn, org)
            self._require_org_visible(conn, actor, org_row)
            team_id = self._team_in(conn, org_row, team).id
            return q.team_repository_grants(conn, team_id, after, limit)

    # Repository grants

    def set_repository_grant(self, actor: Identity, name: str, team: str, level: str | None) -> None:
        """Grant a team of the repository's organization a level on it (or withdraw it with None)."""
        parsed = _parse_level(level) if level is not None else None
        namespace = namespace_of(name)
        with self.db.write() as conn:
            repo = self._repository_for(conn, actor, name, p.Action.MANAGE_ACCESS)
            org_row = q.account_by_name(conn, namespace) if namespace else None
            if org_row is None or org_row.kind != q.ORG:
                raise InvalidInput("only repositories of an organization can be granted to teams", "name")
            team_row = self._team_in(conn, org_row, team)
            if parsed is None:
                if not q.delete_repository_grant(conn, team_row.id, repo.id):
                    raise NotFound(f"team {team} has no grant on {name}")
            else:
                q.set_repository_grant(conn, team_row.id, repo.id, parsed.label)

    def repository_grants(
        self, actor: Identity, name: str, after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, str]]:
        """(team, level) for the grants on the repository (for those who may manage its access), by team,
        after `after`, at most `limit`."""
        with self.db.read() as conn:
            repo = self._repository_for(conn, actor, name, p.Action.MANAGE_ACCESS)
            return q.repository_grants_of(conn, repo.id, after, limit)

    # Repositories

    def repo_facts(self, identity: Identity, name: str) -> p.RepoFacts:
        """What the policy needs about one repository, for one identity."""
        with self.db.read() as conn:
            return self._facts(
                conn, identity, name, q.repository_by_name(conn, name), _namespace_row(conn, name)
            )

    def facts_many(self, identity: Identity, names: list[str]) -> dict[str, p.RepoFacts]:
        """Facts for several repositories at once (the catalog): four queries, however many names."""
        if not names:
            return {}
        with self.db.read() as conn:
            rows = q.repositories_by_names(conn, names)
            wanted = {namespace for name in names if (namespace := namespace_of(name))}
            namespaces = q.accounts_by_names(conn, sorted(wanted)) if wanted else {}
            owned: set[int] = set()
            by_repo: dict[int, list[str]] = {}
            by_org: dict[int, list[str]] = {}
            org_ids = [row.id for row in namespaces.values() if row.kind == q.ORG]
            if identity.user_id is not None and org_ids:
                owned = q.owned_among(conn, identity.user_id, org_ids)
                repo_ids = [row.id for row in rows.values()]
                by_repo, by_org = q.user_team_levels_many(conn, identity.user_id, org_ids, repo_ids)
        facts: dict[str, p.RepoFacts] = {}
        for name in names:
            row, ns_row = rows.get(name), namespaces.get(namespace_of(name) or "")
            owner, levels = False, []
            if identity.user_id is not None and ns_row is not None and ns_row.kind == q.ORG:
                owner = ns_row.id in owned
                levels = [*(by_repo.get(row.id, []) if row else []), *by_org.get(ns_row.id, [])]
            facts[name] = _facts_of(row, ns_row, owner, levels)
        return facts

    def may(self, identity: Identity, name: str, action: p.Action) -> bool:
        """The policy's answer for one repository and action."""
        return p.may(identity, self.repo_facts(identity, name), action, self.policy_settings)

    def visible_repositories(self, identity: Identity, namespace: str | None = None) -> list[Repository]:
        """Every repository the identity may browse, by name."""
        with self.db.read() as conn:
            names = q.all_repository_names(conn, namespace)
        facts = self.facts_many(identity, names)
        wanted = [n for n in names if p.may(identity, facts[n], p.Action.BROWSE, self.policy_settings)]
        with self.db.read() as conn:
            rows = q.repositories_by_names(conn, wanted)
        return [_repository(rows[n]) for n in wanted if n in rows]

    def repository_exists(self, name: str) -> bool:
        """Whether a repository of that name has been created."""
        with self.db.read() as conn:
            return q.repository_by_name(conn, name) is not None

    def ensure_on_push(self, identity: Identity, name: str) -> str:
        """Before a push: create the missing repository (private) when allowed.

        Returns "exists", "created" or "denied".
        """
        if self.repository_exists(name):
            return "exists"
        facts = self.repo_facts(identity, name)
        if facts.exists:
            return "exists"
        if not p.may_create(identity, facts, self.policy_settings, on_push=True):
            return "denied"
        try:
            with self.db.write() as conn:
                if q.repository_by_name(conn, name) is not None:
                    return "exists"
                q.insert_repository(conn, name, "private", scan_on_push=sq.scan_on_push_default(conn))
        except IntegrityError:
            return "exists"  # created concurrently
        return "created"

    def create_repository(
        self,
        actor: Identity,
        name: str,
        visibility: str = "private",
        description: str = "",
        scan_on_push: bool | None = None,
    ) -> Repository:
        """Create a repository explicitly; scan on push as the system default says unless given."""
        check_repository_name(name)
        _check_visibility(visibility)
        _check_description(description)
        with self.db.write() as conn:
            row = q.repository_by_name(conn, name)
            facts = self._facts(conn, actor, name, row, _namespace_row(conn, name))
            if row is not None:
                if p.may(actor, facts, p.Action.BROWSE, self.policy_settings):
                    raise Conflict(f"repository {name} exists", "name")
                raise Forbidden(f"you may not create {name}")
            if actor.read_only:
                raise Forbidden(f"this access token is read-only: it may not create {name}")
            if not p.may_create(actor, facts, self.policy_settings, on_push=False):
                raise Forbidden(f"you may not create repositories in the namespace of {name}")
            if scan_on_push is None:
                scan_on_push = sq.scan_on_push_default(conn)
            q.insert_repository(conn, name, visibility, description, scan_on_push)
            created = q.repository_by_name(conn, name)
        assert created is not None
        return _repository(created)

    def require(self, actor: Identity, name: str, action: p.Action) -> q.RepositoryRow:
        """The repository, if the actor may do `action` to it: NotFound when they may not even browse it
        (private names do not leak), Forbidden when they may browse but not do this."""
        with self.db.read() as conn:
            return self._repository_for(conn, actor, name, action)

    def repository(self, actor: Identity, name: str) -> Repository:
        """A repository the actor may browse."""
        with self.db.read() as conn:
            return _repository(self._repository_for(conn, actor, name, p.Action.BROWSE))

    def update_repository(
        self,
        actor: Identity,
        name: str,
        *,
        visibility: str | None = None,
        description: str | None = None,
        scan_on_push: bool | None = None,
    ) -> Repository:
        """Change visibility, description and/or scan on push (repository administrators)."""
        values: dict[str, str | bool] = {}
        with self.db.write() as conn:
            if visibility is not None:
                _check_visibility(visibility)
                self._repository_for(conn, actor, name, p.Action.SET_VISIBILITY)
                values["visibility"] = visibility
            if description is not None:
                _check_description(description)
                self._repository_for(conn, actor, name, p.Action.EDIT)
                values["description"] = description
            if scan_on_push is not None:
                self._repository_for(conn, actor, name, p.Action.EDIT)
                values["scan_on_push"] = scan_on_push
            repo = self._repository_for(conn, actor, name, p.Action.BROWSE)
            if values:
                q.update_repository(conn, repo.id, **values)
            updated = q.repository_by_name(conn, name)
        assert updated is not None
        return _repository(updated)

    def delete_repository(self, actor: Identity, name: str) -> None:
        """Delete a repository with its tags and manifests; blobs go at the next garbage collection."""
        with self.db.write() as conn:
            repo = self._repository_for(conn, actor, name, p.Action.DELETE_REPOSITORY)
            q.delete_repository(conn, repo.id)

    # Helpers

    def _facts(
        self,
        conn: Connection,
        identity: Identity,
        name: str,
        row: q.RepositoryRow | None,
        ns_row: q.AccountRow | None,
    ) -> p.RepoFacts:
        org_owner = False
        levels: list[str] = []
        if identity.user_id is not None and ns_row is not None and ns_row.kind == q.ORG:
            org_owner = q.is_owner(conn, ns_row.id, identity.user_id)
            levels = q.user_team_levels(conn, identity.user_id, ns_row.id, row.id if row else None)
        return _facts_of(row, ns_row, org_owner, levels)

    def _repository_for(
        self, conn: Connection, actor: Identity, name: str, action: p.Action
    ) -> q.RepositoryRow:
        row = q.repository_by_name(conn, name)
        facts = self._facts(conn, actor, name, row, _namespace_row(conn, name))
        if row is None or not p.may(actor, facts, p.Action.BROWSE, self.policy_settings):
            # Not found and not visible look the same, so private names do not leak.
            raise NotFound(f"no repository named {name}")
        if not p.may(actor, facts, action, self.policy_settings):
            raise Forbidden(p.refusal(actor, facts, action, self.policy_settings, name))
        return row

    def _require_admin(self, actor: Identity | None) -> None:
        if actor is not None and not p.may_administer(actor):
            raise Forbidden("only system administrators may do this")

    def _check_password(self, password: str) -> None:
        try:
            passwords.check_password_rules(password)
        except passwords.WeakPassword as exc:
            raise InvalidInput(str(exc), "password") from exc

    def _user_in(self, conn: Connection, name: str, field: str = "name") -> q.AccountRow:
        row = q.account_by_name(conn, name)
        if row is None or row.kind != q.USER:
            raise NotFound(f"no user named {name}", field)
        return row

    def _org_in(self, conn: Connection, name: str) -> q.AccountRow:
        row = q.account_by_name(conn, name)
        if row is None or row.kind != q.ORG:
            raise NotFound(f"no organization named {name}")
        return row

    def _team_in(self, conn: Connection, org: q.AccountRow, name: str) -> q.TeamRow:
        team = q.team_by_name(conn, org.id, name)
        if team is None:
            raise NotFound(f"{org.name} has no team named {name}", "team")
        return team

    def _managed_org(self, conn: Connection, actor: Identity, name: str) -> q.AccountRow:
        org = self._org_in(conn, name)
        owner = actor.user_id is not None and q.is_owner(conn, org.id, actor.user_id)
        if not p.may_manage_organization(actor, owner=owner):
            raise Forbidden(f"only owners of {name} and administrators may do this")
        return org

    def _require_org_visible(self, conn: Connection, actor: Identity, org: q.AccountRow) -> None:
        if actor.is_admin or (
            actor.user_id is not None and org.name in q.organizations_of(conn, actor.user_id)
        ):
            return
        raise Forbidden(f"only members of {org.name} may see its teams")


def _facts_of(
    row: q.RepositoryRow | None, ns_row: q.AccountRow | None, org_owner: bool, levels: list[str]
) -> p.RepoFacts:
    kind = p.NamespaceKind.NONE
    if ns_row is not None:
        kind = p.NamespaceKind.USER if ns_row.kind == q.USER else p.NamespaceKind.ORG
    return p.RepoFacts(
        namespace_kind=kind,
        namespace_id=ns_row.id if ns_row is not None else None,
        exists=row is not None,
        public=row is not None and row.visibility == "public",
        org_owner=org_owner,
        team_levels=tuple(p.Level.parse(level) for level in levels),
    )


def _namespace_row(conn: Connection, name: str) -> q.AccountRow | None:
    namespace = namespace_of(name)
    return q.account_by_name(conn, namespace) if namespace else None


def _parse_level(level: str) -> p.Level:
    try:
        return p.Level.parse(level)
    except ValueError as exc:
        raise InvalidInput(str(exc), "level") from exc


def _check_visibility(visibility: str) -> None:
    if visibility not in VISIBILITIES:
        raise InvalidInput("visibility is public or private", "visibility")


def _check_description(description: str) -> None:
    if len(description) > 10000:
        raise InvalidInput("at most 10000 characters", "description")


def _repository(row: q.RepositoryRow) -> Repository:
    return Repository(
        name=row.name,
        namespace=namespace_of(row.name),
        visibility=row.visibility,
        description=row.description,
        created_at=row.created_at,
        scan_on_push=row.scan_on_push,
    )


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
