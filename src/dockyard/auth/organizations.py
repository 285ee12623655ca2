"""Organizations, their owners, teams and members: the rules. Every change is audited here, in the
transaction that makes it; SQL lives in dockyard.db.accounts."""

from __future__ import annotations

import re

from sqlalchemy.engine import Connection

from dockyard.auth import policy as p
from dockyard.auth.accounts import check_account_name, require_admin, user_in
from dockyard.auth.errors import Conflict, Forbidden, InvalidInput, NotFound
from dockyard.auth.identity import Identity
from dockyard.db import accounts as q
from dockyard.db.engine import Database
from dockyard.events.audit import AuditLog

_TEAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_team_name(name: str, field: str = "name") -> str:
    """Team names: letters, digits, '.', '_' and '-', up to 64."""
    if not _TEAM_NAME.fullmatch(name):
        raise InvalidInput("team names have 1 to 64 letters, digits, '.', '_' or '-'", field)
    return name


def org_in(conn: Connection, name: str) -> q.AccountRow:
    """The organization of that name, or NotFound."""
    row = q.account_by_name(conn, name)
    if row is None or row.kind != q.ORG:
        raise NotFound(f"no organization named {name}")
    return row


def team_in(conn: Connection, org: q.AccountRow, name: str) -> q.TeamRow:
    """The organization's team of that name, or NotFound."""
    team = q.team_by_name(conn, org.id, name)
    if team is None:
        raise NotFound(f"{org.name} has no team named {name}", "team")
    return team


def managed_org(conn: Connection, actor: Identity, name: str) -> q.AccountRow:
    """The organization, if the actor may manage it (its owners and administrators), else Forbidden."""
    org = org_in(conn, name)
    owner = actor.user_id is not None and q.is_owner(conn, org.id, actor.user_id)
    if not p.may_manage_organization(actor, owner=owner):
        raise Forbidden(f"only owners of {name} and administrators may do this")
    return org


def require_org_visible(conn: Connection, actor: Identity, org: q.AccountRow) -> None:
    """Forbidden unless the actor is an administrator or belongs to the organization."""
    if actor.is_admin or (actor.user_id is not None and org.name in q.organizations_of(conn, actor.user_id)):
        return
    raise Forbidden(f"only members of {org.name} may see its teams")


class OrganizationService:
    """Organizations, owners, teams and members."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    def create_organization(
        self, actor: Identity, name: str, owners: list[str], full_name: str = ""
    ) -> q.AccountRow:
        """Create an organization (administrators) with its first owners."""
        require_admin(actor)
        check_account_name(name)
        with self.db.write() as conn:
            if q.account_by_name(conn, name) is not None:
                raise Conflict(f"the name {name} is taken", "name")
            owner_ids = [user_in(conn, owner, "owners").id for owner in owners]
            org_id = q.insert_account(conn, name, q.ORG, full_name=full_name)
            for owner_id in owner_ids:
                q.add_owner(conn, org_id, owner_id)
            row = q.account_by_id(conn, org_id)
            self.audit.add(conn, "org.create", actor=actor, target=name, owners=owners)
        assert row is not None
        return row

    def organization(self, name: str) -> tuple[q.AccountRow, list[str]]:
        """An organization and its owners."""
        with self.db.read() as conn:
            org = org_in(conn, name)
            return org, q.owners(conn, org.id)

    def organizations_of(self, identity: Identity) -> list[str]:
        """Organizations the identity owns or belongs to through a team."""
        if identity.user_id is None:
            return []
        with self.db.read() as conn:
            return q.organizations_of(conn, identity.user_id)

    def visible_organizations(self, actor: Identity) -> list[str]:
        """The organizations the actor sees listed: every one for administrators, else their own."""
        if not p.may_browse_everything(actor):
            return self.organizations_of(actor)
        with self.db.read() as conn:
            return [row.name for row in q.list_accounts(conn, q.ORG)]

    def organizations_page(
        self, actor: Identity, after: str | None, limit: int
    ) -> list[tuple[q.AccountRow, list[str]]]:
        """Organizations by name with their owners, after `after`, at most `limit`."""
        with self.db.read() as conn:
            orgs = q.list_accounts(conn, q.ORG, after, limit)
            return [(org, q.owners(conn, org.id)) for org in orgs]

    def set_owner(self, actor: Identity, org: str, user: str, owner: bool) -> None:
        """Add or remove an owner of an organization."""
        with self.db.write() as conn:
            org_row = managed_org(conn, actor, org)
            user_row = user_in(conn, user, "user")
            if owner:
                q.add_owner(conn, org_row.id, user_row.id)
            elif not q.remove_owner(conn, org_row.id, user_row.id):
                raise NotFound(f"{user} is not an owner of {org}")
            self.audit.add(
                conn, "org.owner.add" if owner else "org.owner.remove", actor=actor, target=org, user=user
            )

    def create_team(self, actor: Identity, org: str, name: str, description: str = "") -> q.TeamRow:
        """Create a team in an organization (its owners, or administrators)."""
        check_team_name(name)
        if len(description) > 1000:
            raise InvalidInput("at most 1000 characters", "description")
        with self.db.write() as conn:
            org_row = managed_org(conn, actor, org)
            if q.team_by_name(conn, org_row.id, name) is not None:
                raise Conflict(f"{org} already has a team named {name}", "name")
            q.insert_team(conn, org_row.id, name, description)
            team = q.team_by_name(conn, org_row.id, name)
            self.audit.add(conn, "team.create", actor=actor, target=f"{org}/{name}")
        assert team is not None
        return team

    def teams(
        self, actor: Identity, org: str, after: str | None = None, limit: int | None = None
    ) -> list[q.TeamRow]:
        """The teams of an organization (visible to its owners, members and administrators), by name, after
        `after`, at most `limit`."""
        with self.db.read() as conn:
            org_row = org_in(conn, org)
            require_org_visible(conn, actor, org_row)
            return q.list_teams(conn, org_row.id, after, limit)

    def team_members(
        self, actor: Identity, org: str, name: str, after: str | None, limit: int
    ) -> tuple[q.TeamRow, list[str], str | None]:
        """A team, a page of its members (by name, after `after`, at most `limit`), its namespace grant."""
        with self.db.read() as conn:
            org_row = org_in(conn, org)
            require_org_visible(conn, actor, org_row)
            team = team_in(conn, org_row, name)
            return team, q.members(conn, team.id, after, limit), q.namespace_grant(conn, team.id)

    def team(self, actor: Identity, org: str, name: str) -> tuple[q.TeamRow, list[str], str | None]:
        """A team, its members and its namespace grant."""
        with self.db.read() as conn:
            org_row = org_in(conn, org)
            require_org_visible(conn, actor, org_row)
            team = team_in(conn, org_row, name)
            return team, q.members(conn, team.id), q.namespace_grant(conn, team.id)

    def delete_team(self, actor: Identity, org: str, name: str) -> None:
        """Remove a team, its memberships and grants."""
        with self.db.write() as conn:
            org_row = managed_org(conn, actor, org)
            q.delete_team(conn, team_in(conn, org_row, name).id)
            self.audit.add(conn, "team.delete", actor=actor, target=f"{org}/{name}")

    def set_member(self, actor: Identity, org: str, team: str, user: str, member: bool) -> None:
        """Add a user to a team, or remove them."""
        with self.db.write() as conn:
            org_row = managed_org(conn, actor, org)
            team_row = team_in(conn, org_row, team)
            user_row = user_in(conn, user, "user")
            if member:
                q.add_member(conn, team_row.id, user_row.id)
            elif not q.remove_member(conn, team_row.id, user_row.id):
                raise NotFound(f"{user} is not a member of {org}/{team}")
            action = "team.member.add" if member else "team.member.remove"
            self.audit.add(conn, action, actor=actor, target=f"{org}/{team}", user=user)
