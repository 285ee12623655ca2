"""Grants: a team's level on every repository of its organization (namespace grants) or on one repository.
Every change is audited here, in the transaction that makes it; SQL lives in dockyard.db.accounts."""

from __future__ import annotations

from dockyard.auth import policy as p
from dockyard.auth.errors import InvalidInput, NotFound
from dockyard.auth.identity import Identity
from dockyard.auth.organizations import managed_org, org_in, require_org_visible, team_in
from dockyard.auth.permissions import Permissions
from dockyard.content.names import namespace_of
from dockyard.db import accounts as q
from dockyard.events.audit import AuditLog


def _parse_level(level: str) -> p.Level:
    try:
        return p.Level.parse(level)
    except ValueError as exc:
        raise InvalidInput(str(exc), "level") from exc


class GrantService:
    """Namespace and repository grants of teams."""

    def __init__(self, permissions: Permissions, audit: AuditLog) -> None:
        self.permissions = permissions
        self.db = permissions.db
        self.audit = audit

    def set_namespace_grant(self, actor: Identity, org: str, team: str, level: str | None) -> None:
        """Grant a team a level on every repository of its organization (or withdraw it with None)."""
        parsed = _parse_level(level) if level is not None else None
        with self.db.write() as conn:
            org_row = managed_org(conn, actor, org)
            team_row = team_in(conn, org_row, team)
            q.set_namespace_grant(conn, team_row.id, parsed.label if parsed else None)
            if parsed is None:
                self.audit.add(conn, "grant.namespace.remove", actor=actor, target=f"{org}/{team}")
            else:
                self.audit.add(conn, "grant.namespace.set", actor=actor, target=f"{org}/{team}", level=level)

    def team_repositories(
        self, actor: Identity, org: str, team: str, after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, str]]:
        """(repository, level) for the repository grants of a team, by name, after `after`, at most
        `limit`."""
        with self.db.read() as conn:
            org_row = org_in(conn, org)
            require_org_visible(conn, actor, org_row)
            team_id = team_in(conn, org_row, team).id
            return q.team_repository_grants(conn, team_id, after, limit)

    def set_repository_grant(self, actor: Identity, name: str, team: str, level: str | None) -> None:
        """Grant a team of the repository's organization a level on it (or withdraw it with None)."""
        parsed = _parse_level(level) if level is not None else None
        namespace = namespace_of(name)
        with self.db.write() as conn:
            repo = self.permissions.repository_for(conn, actor, name, p.Action.MANAGE_ACCESS)
            org_row = q.account_by_name(conn, namespace) if namespace else None
            if org_row is None or org_row.kind != q.ORG:
                raise InvalidInput("only repositories of an organization can be granted to teams", "name")
            team_row = team_in(conn, org_row, team)
            if parsed is None:
                if not q.delete_repository_grant(conn, team_row.id, repo.id):
                    raise NotFound(f"team {team} has no grant on {name}")
                self.audit.add(
                    conn, "grant.repository.remove", actor=actor, target=name, team=f"{org_row.name}/{team}"
                )
            else:
                q.set_repository_grant(conn, team_row.id, repo.id, parsed.label)
                self.audit.add(
                    conn,
                    "grant.repository.set",
                    actor=actor,
                    target=name,
                    team=f"{org_row.name}/{team}",
                    level=level,
                )

    def repository_grants(
        self, actor: Identity, name: str, after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, str]]:
        """(team, level) for the grants on the repository (for those who may manage its access), by team,
        after `after`, at most `limit`."""
        with self.db.read() as conn:
            repo = self.permissions.repository_for(conn, actor, name, p.Action.MANAGE_ACCESS)
            return q.repository_grants_of(conn, repo.id, after, limit)
