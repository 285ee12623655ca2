"""The /api/v1 routes of organizations: owners, teams, members, namespace access and repository grants.
Each checks and records nothing itself: the organization and grant services ask the policy and audit
what they change."""

from __future__ import annotations

from fastapi import APIRouter

from dockyard.api import models as m
from dockyard.api.deps import Ctx, User
from dockyard.api.errors import documented
from dockyard.api.paging import PAGED, Paging
from dockyard.api.routes import NO_CONTENT
from dockyard.auth.errors import NotFound
from dockyard.db.accounts import AccountRow

router = APIRouter(responses=documented())


# Organizations, owners, teams, members


def _org_out(ctx: Ctx, name: str) -> m.OrganizationOut:
    return _org_view(*ctx.auth.organizations.organization(name))


def _org_view(org: AccountRow, owners: list[str]) -> m.OrganizationOut:
    return m.OrganizationOut(name=org.name, full_name=org.full_name, owners=owners, created_at=org.created_at)


@router.get(
    "/organizations",
    tags=["organizations"],
    response_model=list[m.OrganizationOut],
    responses={**PAGED, **documented()},
)
def list_organizations(
    ctx: Ctx,
    identity: User,
    paging: Paging,
) -> list[m.OrganizationOut]:
    """Organizations by name, with their owners."""
    rows = ctx.auth.organizations.organizations_page(identity, paging.after, paging.fetch)
    return [_org_view(org, owners) for org, owners in paging.page(rows, lambda row: row[0].name)]


@router.post(
    "/organizations",
    tags=["organizations"],
    response_model=m.OrganizationOut,
    status_code=201,
    responses=documented(403, 404, 409),
)
def create_organization(body: m.OrganizationCreate, ctx: Ctx, identity: User) -> m.OrganizationOut:
    """Create an organization (system administrators) with its first owners."""
    ctx.auth.organizations.create_organization(identity, body.name, body.owners, body.full_name)
    return _org_out(ctx, body.name)


@router.get(
    "/organizations/{org}",
    tags=["organizations"],
    response_model=m.OrganizationOut,
    responses=documented(404),
)
def get_organization(org: str, ctx: Ctx, _identity: User) -> m.OrganizationOut:
    """One organization."""
    return _org_out(ctx, org)


@router.delete(
    "/organizations/{org}",
    tags=["organizations"],
    status_code=NO_CONTENT,
    responses=documented(403, 404, 409),
)
def delete_organization(org: str, ctx: Ctx, identity: User) -> None:
    """Delete an organization with its teams (system administrators); refused (409) while it holds
    repositories."""
    ctx.auth.organizations.organization(org)
    ctx.auth.accounts.delete_account(identity, org)


@router.put(
    "/organizations/{org}/owners/{name}",
    tags=["organizations"],
    status_code=NO_CONTENT,
    responses=documented(403, 404),
)
def add_owner(org: str, name: str, ctx: Ctx, identity: User) -> None:
    """Make a user an owner of the organization."""
    ctx.auth.organizations.set_owner(identity, org, name, True)


@router.delete(
    "/organizations/{org}/owners/{name}",
    tags=["organizations"],
    status_code=NO_CONTENT,
    responses=documented(403, 404),
)
def remove_owner(org: str, name: str, ctx: Ctx, identity: User) -> None:
    """Remove an owner of the organization."""
    ctx.auth.organizations.set_owner(identity, org, name, False)


@router.get(
    "/organizations/{org}/teams",
    tags=["teams"],
    response_model=list[m.TeamOut],
    responses={**PAGED, **documented(403, 404)},
)
def list_teams(
    org: str,
    ctx: Ctx,
    identity: User,
    paging: Paging,
) -> list[m.TeamOut]:
    """The organization's teams by name."""
    rows = ctx.auth.organizations.teams(identity, org, paging.after, paging.fetch)
    return [m.TeamOut(name=t.name, description=t.description) for t in paging.page(rows, lambda t: t.name)]


@router.post(
    "/organizations/{org}/teams",
    tags=["teams"],
    response_model=m.TeamOut,
    status_code=201,
    responses=documented(403, 404, 409),
)
def create_team(org: str, body: m.TeamCreate, ctx: Ctx, identity: User) -> m.TeamOut:
    """Create a team (organization owners)."""
    team = ctx.auth.organizations.create_team(identity, org, body.name, body.description)
    return m.TeamOut(name=team.name, description=team.description)


@router.get(
    "/organizations/{org}/teams/{team}",
    tags=["teams"],
    response_model=m.TeamOut,
    responses=documented(403, 404),
)
def get_team(org: str, team: str, ctx: Ctx, identity: User) -> m.TeamOut:
    """A team with its namespace access (its members: GET .../members)."""
    row, _, level = ctx.auth.organizations.team_members(identity, org, team, None, 0)
    return m.TeamOut(name=row.name, description=row.description, namespace_access=level)


@router.get(
    "/organizations/{org}/teams/{team}/members",
    tags=["teams"],
    response_model=list[str],
    responses={**PAGED, **documented(403, 404)},
)
def list_members(
    org: str,
    team: str,
    ctx: Ctx,
    identity: User,
    paging: Paging,
) -> list[str]:
    """The names of the team's members, by name."""
    _, members, _ = ctx.auth.organizations.team_members(identity, org, team, paging.after, paging.fetch)
    return paging.page(members, lambda name: name)


@router.delete(
    "/organizations/{org}/teams/{team}",
    tags=["teams"],
    status_code=NO_CONTENT,
    responses=documented(403, 404),
)
def delete_team(org: str, team: str, ctx: Ctx, identity: User) -> None:
    """Delete a team with its grants."""
    ctx.auth.organizations.delete_team(identity, org, team)


@router.put(
    "/organizations/{org}/teams/{team}/members/{name}",
    tags=["teams"],
    status_code=NO_CONTENT,
    responses=documented(403, 404),
)
def add_member(org: str, team: str, name: str, ctx: Ctx, identity: User) -> None:
    """Add a user to the team."""
    ctx.auth.organizations.set_member(identity, org, team, name, True)


@router.delete(
    "/organizations/{org}/teams/{team}/members/{name}",
    tags=["teams"],
    status_code=NO_CONTENT,
    responses=documented(403, 404),
)
def remove_member(org: str, team: str, name: str, ctx: Ctx, identity: User) -> None:
    """Remove a user from the team."""
    ctx.auth.organizations.set_member(identity, org, team, name, False)


@router.put(
    "/organizations/{org}/teams/{team}/namespace-access",
    tags=["grants"],
    status_code=NO_CONTENT,
    responses=documented(403, 404),
)
def set_namespace_access(org: str, team: str, body: m.LevelIn, ctx: Ctx, identity: User) -> None:
    """Grant the team a level on every repository of the organization (read-write and up may create)."""
    ctx.auth.grants.set_namespace_grant(identity, org, team, body.level)


@router.delete(
    "/organizations/{org}/teams/{team}/namespace-access",
    tags=["grants"],
    status_code=NO_CONTENT,
    responses=documented(403, 404),
)
def remove_namespace_access(org: str, team: str, ctx: Ctx, identity: User) -> None:
    """Withdraw the team's namespace-wide grant."""
    ctx.auth.grants.set_namespace_grant(identity, org, team, None)


@router.get(
    "/organizations/{org}/teams/{team}/repositories",
    tags=["grants"],
    response_model=list[m.GrantOut],
    responses={**PAGED, **documented(403, 404)},
)
def team_repositories(
    org: str,
    team: str,
    ctx: Ctx,
    identity: User,
    paging: Paging,
) -> list[m.GrantOut]:
    """The team's repository grants, by repository."""
    grants = ctx.auth.grants.team_repositories(identity, org, team, paging.after, paging.fetch)
    page = paging.page(grants, lambda grant: grant[0])
    return [m.GrantOut(repository=repo, team=team, level=level) for repo, level in page]


@router.put(
    "/organizations/{org}/teams/{team}/repositories/{name:path}",
    tags=["grants"],
    status_code=NO_CONTENT,
    responses=documented(403, 404),
)
def grant_repository(org: str, team: str, name: str, body: m.LevelIn, ctx: Ctx, identity: User) -> None:
    """Grant the team a level on one of the organization's repositories (repository administrators)."""
    _same_org(org, name)
    ctx.auth.grants.set_repository_grant(identity, name, team, body.level)


@router.delete(
    "/organizations/{org}/teams/{team}/repositories/{name:path}",
    tags=["grants"],
    status_code=NO_CONTENT,
    responses=documented(403, 404),
)
def revoke_repository(org: str, team: str, name: str, ctx: Ctx, identity: User) -> None:
    """Withdraw the team's grant on a repository."""
    _same_org(org, name)
    ctx.auth.grants.set_repository_grant(identity, name, team, None)


def _same_org(org: str, name: str) -> None:
    if not name.startswith(f"{org}/"):
        raise NotFound(f"{name} is not a repository of {org}")
