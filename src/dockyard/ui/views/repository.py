"""A repository's page and its tabs (tags, permissions, settings, activity), and what its forms do.

Paths: /repositories/<name> shows the page; /repositories/<name>/-/<action> names a sub-page or a form
(`/-/` cannot occur in a repository name, so it separates the two unambiguously).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dockyard.auth.errors import AuthError, InvalidInput, NotFound
from dockyard.auth.identity import Identity
from dockyard.content.digests import parse_digest
from dockyard.content.names import namespace_of
from dockyard.ui.markdown import render
from dockyard.ui.render import page
from dockyard.ui.session import viewer
from dockyard.ui.views import image
from dockyard.ui.views.common import Form, back, call, notice, posted, repo_url, services

TABS = ("tags", "untagged", "permissions", "settings", "activity")
LEVELS = ("read-only", "read-write", "admin")
TAGS_PER_PAGE = 50
UNTAGGED_PER_PAGE = 50


def _split(request: Request) -> tuple[str, str]:
    name, _, action = request.path_params["rest"].partition("/-/")
    return name.strip("/"), action


def pull_host(request: Request) -> str:
    """The registry's host as clients name it: the external URL's, else the one this page came from."""
    external = services(request).settings.external_url
    return (external or str(request.base_url)).split("://", 1)[-1].rstrip("/")


async def show(request: Request) -> Response:
    """GET /repositories/<name>[/-/image/<digest>[/sbom]]."""
    name, action = _split(request)
    if action.startswith("image/"):
        return await image.show(request, name, action.removeprefix("image/"))
    if action:
        raise NotFound("no such page")
    current = await viewer(request)
    svc = services(request)
    repo = await call(svc.auth.repositories.repository, current.identity, name)
    allowed = await call(svc.browser.allowed, current.identity, name)
    tab = request.query_params.get("tab", "tags")
    if tab not in TABS:
        tab = "tags"
    context: dict[str, Any] = {}
    if tab == "tags":
        after = request.query_params.get("after", "")[:128]
        context["tags"] = await call(
            svc.browser.tags, current.identity, name, after=after, limit=TAGS_PER_PAGE
        )
        context["after"] = after
    elif tab == "untagged":
        cursor = request.query_params.get("after", "")[:200] or None
        context["untagged"] = await call(
            svc.listing.untagged, current.identity, name, cursor, UNTAGGED_PER_PAGE
        )
        context["after"] = cursor
    elif tab == "permissions" and "manage-access" in allowed:
        context["grants"] = await call(svc.auth.grants.repository_grants, current.identity, name)
        org = namespace_of(name)
        teams = await _teams(request, current.identity, org) if org else []
        context["teams"] = teams
    elif tab == "activity" and "manage-access" in allowed:
        context["events"] = await call(svc.browser.activity, current.identity, name, limit=100)
    readme = await call(svc.browser.readme, current.identity, name)
    return page(
        request,
        current,
        "repository.html",
        repo=repo,
        allowed=allowed,
        tab=tab,
        readme_source=readme,
        readme=render(readme),
        pull_host=pull_host(request),
        levels=LEVELS,
        notice=notice(request),
        **context,
    )


async def _teams(request: Request, identity: Identity, org: str) -> list[str]:
    try:
        rows = await call(services(request).auth.organizations.teams, identity, org)
    except AuthError:
        return []  # a user's namespace, or an organization the viewer does not see into
    return [row.name for row in rows]


async def act(request: Request) -> Response:
    """POST /repositories/<name>/-/<action>."""
    name, action = _split(request)
    form = await posted(request)
    if action.startswith("image/"):
        return await image.act(request, form, name, action.removeprefix("image/"))
    handler = _ACTIONS.get(action)
    if handler is None:
        raise NotFound("no such form")
    return await handler(request, form, name)


async def _settings(request: Request, form: Form, name: str) -> Response:
    await call(
        services(request).auth.repositories.update,
        form.viewer.identity,
        name,
        visibility=form.get("visibility") or None,
        description=form.get("description"),
        scan_on_push=form.get("scan_on_push") == "on",
    )
    return back(repo_url(name), "saved", tab="settings")


async def _readme(request: Request, form: Form, name: str) -> Response:
    await call(services(request).auth.repositories.set_readme, form.viewer.identity, name, form.get("readme"))
    return back(repo_url(name), "saved", tab="settings")


async def _delete(request: Request, form: Form, name: str) -> Response:
    if form.get("confirm") != name:
        raise InvalidInput("type the repository's name to confirm", "confirm")
    await call(services(request).auth.repositories.delete, form.viewer.identity, name)
    return back("/", "deleted")


async def _delete_tag(request: Request, form: Form, name: str) -> Response:
    tag = form.get("tag")
    await call(services(request).listing.delete_tag, form.viewer.identity, name, tag)
    return back(repo_url(name), "deleted")


async def _delete_manifest(request: Request, form: Form, name: str) -> Response:
    digest = parse_digest(form.get("digest"))
    await call(services(request).listing.delete_untagged, form.viewer.identity, name, digest)
    return back(repo_url(name), "deleted", tab="untagged")


async def _grant(request: Request, form: Form, name: str) -> Response:
    level = form.get("level")
    team = form.get("team")
    await call(
        services(request).auth.grants.set_repository_grant,
        form.viewer.identity,
        name,
        team,
        None if level == "none" else level,
    )
    return back(repo_url(name), "granted", tab="permissions")


_ACTIONS: dict[str, Callable[[Request, Form, str], Awaitable[Response]]] = {
    "settings": _settings,
    "readme": _readme,
    "delete": _delete,
    "delete-tag": _delete_tag,
    "delete-manifest": _delete_manifest,
    "grant": _grant,
}
