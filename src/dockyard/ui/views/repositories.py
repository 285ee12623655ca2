"""The repository list (search, filters, sort, paging) and the new-repository form."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.auth.errors import AuthError
from dockyard.registry.numbers import parse_count
from dockyard.ui.render import page
from dockyard.ui.session import viewer
from dockyard.ui.views.common import back, call, notice, posted, repo_url, services, signed_in

PER_PAGE = 25


def _page_number(text: str) -> int:
    number = parse_count(text) if len(text) < 7 else None
    return number or 1


async def repositories(request: Request) -> Response:
    """GET /: every repository the viewer may see."""
    current = await viewer(request)
    params = request.query_params
    query = params.get("q", "")
    namespace = params.get("namespace") or None
    visibility = params.get("visibility") or None
    sort = params.get("sort") or "name"
    found = await call(
        services(request).browser.repositories,
        current.identity,
        query=query,
        namespace=namespace,
        visibility=visibility,
        sort=sort,
        page=_page_number(params.get("page", "1")),
        per_page=PER_PAGE,
    )
    creatable = await call(services(request).browser.creatable_namespaces, current.identity)
    filters = {"q": query, "namespace": namespace or "", "visibility": visibility or "", "sort": sort}
    return page(
        request,
        current,
        "repositories.html",
        found=found,
        filters=filters,
        may_create=bool(creatable),
        notice=notice(request),
    )


async def new_repository(request: Request) -> Response:
    """GET /new-repository: offers only the namespaces where the viewer may create."""
    current = await viewer(request)
    signed_in(current)
    namespaces = await call(services(request).browser.creatable_namespaces, current.identity)
    return page(request, current, "new_repository.html", namespaces=namespaces, values={})


async def create_repository(request: Request) -> Response:
    """POST /new-repository."""
    form = await posted(request)
    signed_in(form.viewer)
    name = f"{form.get('namespace')}/{form.get('name').strip()}"
    try:
        repo = await call(
            services(request).auth.repositories.create,
            form.viewer.identity,
            name,
            form.get("visibility", "private"),
            form.get("description"),
        )
    except AuthError as exc:
        namespaces = await call(services(request).browser.creatable_namespaces, form.viewer.identity)
        return page(
            request,
            form.viewer,
            "new_repository.html",
            status=exc.status,
            namespaces=namespaces,
            values=form.fields,
            error=exc.message,
        )
    return back(repo_url(repo.name), "created")
