"""Organizations (owners, teams, members, namespace grants) and, for administrators, users."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.auth import policy as p
from dockyard.auth.errors import NotFound
from dockyard.db.accounts import USER
from dockyard.ui.render import page
from dockyard.ui.session import viewer
from dockyard.ui.views.common import Form, back, call, notice, posted, services, signed_in

LEVELS = ("read-only", "read-write", "admin")


async def organizations(request: Request) -> Response:
    """GET /organizations: those the viewer belongs to (every one for administrators)."""
    current = await viewer(request)
    signed_in(current)
    names = await call(services(request).auth.organizations.visible_organizations, current.identity)
    return page(
        request,
        current,
        "organizations.html",
        names=names,
        may_create=p.may_administer(current.identity),
        notice=notice(request),
    )


async def create_organization(request: Request) -> Response:
    """POST /organizations (administrators)."""
    form = await posted(request)
    signed_in(form.viewer)
    name = form.get("name").strip()
    owners = [o.strip() for o in form.get("owners").split(",") if o.strip()]
    await call(
        services(request).auth.organizations.create_organization,
        form.viewer.identity,
        name,
        owners,
        form.get("full_name"),
    )
    return back(f"/organizations/{name}", "created")


async def organization(request: Request) -> Response:
    """GET /organizations/<org>: owners and teams with their members and grants."""
    current = await viewer(request)
    signed_in(current)
    org = request.path_params["org"]
    auth = services(request).auth
    rows = await call(auth.organizations.teams, current.identity, org)
    row, owners = await call(auth.organizations.organization, org)
    teams = []
    for team in rows:
        _, members, grant = await call(auth.organizations.team, current.identity, org, team.name)
        repos = await call(auth.grants.team_repositories, current.identity, org, team.name)
        teams.append({"row": team, "members": members, "grant": grant, "repositories": repos})
    manage = p.may_manage_organization(current.identity, owner=current.identity.name in owners)
    return page(
        request,
        current,
        "organization.html",
        org=row,
        owners=owners,
        teams=teams,
        manage=manage,
        levels=LEVELS,
        notice=notice(request),
    )


async def organization_act(request: Request) -> Response:
    """POST /organizations/<org>/<action>: team, member, owner, namespace-grant."""
    form = await posted(request)
    signed_in(form.viewer)
    org = request.path_params["org"]
    action = request.path_params["action"]
    auth = services(request).auth
    identity = form.viewer.identity
    team = form.get("team").strip()
    if action == "team":
        await call(auth.organizations.create_team, identity, org, team, form.get("description"))
    elif action == "member":
        user = form.get("user").strip()
        member = form.get("remove") != "on"
        await call(auth.organizations.set_member, identity, org, team, user, member)
    elif action == "owner":
        user = form.get("user").strip()
        owner = form.get("remove") != "on"
        await call(auth.organizations.set_owner, identity, org, user, owner)
    elif action == "namespace-grant":
        level = form.get("level")
        await call(auth.grants.set_namespace_grant, identity, org, team, None if level == "none" else level)
    else:
        raise NotFound("no such form")
    return back(f"/organizations/{org}", "saved")


async def users(request: Request) -> Response:
    """GET /users (administrators)."""
    current = await viewer(request)
    signed_in(current)
    rows = await call(services(request).auth.accounts.list_accounts, current.identity, USER)
    return page(request, current, "users.html", users=rows, notice=notice(request))


async def users_act(request: Request) -> Response:
    """POST /users/<action>: create, admin, active, password (administrators)."""
    form = await posted(request)
    signed_in(form.viewer)
    await _user_change(request, form, request.path_params["action"])
    return back("/users", "saved")


async def _user_change(request: Request, form: Form, action: str) -> None:
    accounts = services(request).auth.accounts
    identity = form.viewer.identity
    name = form.get("name").strip()
    if action == "create":
        await call(
            accounts.create_user,
            identity,
            name,
            form.get("password"),
            is_admin=form.get("is_admin") == "on",
            full_name=form.get("full_name"),
        )
    elif action == "admin":
        await call(accounts.set_admin, identity, name, form.get("value") == "on")
    elif action == "active":
        await call(accounts.set_active, identity, name, form.get("value") == "on")
    elif action == "password":
        await call(accounts.set_password, identity, name, form.get("password"))
    else:
        raise NotFound("no such form")
