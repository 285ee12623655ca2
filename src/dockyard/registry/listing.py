"""Paginated lists: GET /v2/<name>/tags/list and GET /v2/_catalog."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from dockyard.content.errors import PaginationInvalid
from dockyard.registry.access import PULL
from dockyard.registry.context import RegistryContext, read

CATALOG_DEFAULT_PAGE = 100
MAX_PAGE = 10_000
_UNLIMITED = 1 << 62


def _page_size(request: Request, default: int, maximum: int) -> int:
    value = request.query_params.get("n")
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise PaginationInvalid(f"n must be a non-negative integer, not {value[:20]!r}")
    return min(int(value), maximum)


def _page(path: str, items: list[str], limit: int) -> tuple[list[str], dict[str, str]]:
    """Items were fetched one past the limit to learn whether a next page exists; link to it when it does."""
    if len(items) <= limit or limit == 0:
        return items[:limit], {}
    items = items[:limit]
    query = urlencode({"n": limit, "last": items[-1]})
    return items, {"Link": f'<{path}?{query}>; rel="next"'}


def _json(payload: object, headers: dict[str, str]) -> Response:
    return Response(json.dumps(payload).encode(), media_type="application/json", headers=headers)


async def list_tags(request: Request, ctx: RegistryContext, name: str, _arg: str) -> Response:
    """One page of tags, in lexical order."""
    await ctx.access.require(request, name, [PULL])
    limit = _page_size(request, _UNLIMITED, _UNLIMITED)
    last = request.query_params.get("last") or None
    tags = await read(ctx, ctx.manifests.tags, name, last, limit + 1)
    tags, headers = _page(f"/v2/{name}/tags/list", tags, limit)
    return _json({"name": name, "tags": tags}, headers)


async def catalog(request: Request, ctx: RegistryContext, _name: str, _arg: str) -> Response:
    """One page of the repositories the caller may see."""
    await ctx.access.require(request, None, [])
    limit = _page_size(request, CATALOG_DEFAULT_PAGE, MAX_PAGE)
    last = request.query_params.get("last") or None
    names: list[str] = []
    # Filtering may hide some names: keep reading until the page is full or the list ends.
    while len(names) <= limit:
        batch = await read(ctx, ctx.manifests.catalog, last, limit + 1)
        names += await ctx.access.visible(request, batch)
        if len(batch) <= limit:
            break
        last = batch[-1]
    names, headers = _page("/v2/_catalog", names, limit)
    return _json({"repositories": names}, headers)
