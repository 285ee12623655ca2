"""Paginated lists: GET /v2/<name>/tags/list and GET /v2/_catalog.

Every request does bounded database work whatever it asks: a page holds at most MAX_PAGE entries. The
catalog shows only what the caller may see: the listing service selects those names in the database (the
SQL of the policy's browse rule), so a page and its Link name no other repository.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from dockyard.content.errors import NameInvalid, PaginationInvalid, TagInvalid
from dockyard.registry.access import PULL
from dockyard.registry.context import RegistryContext, listing_call, read
from dockyard.registry.numbers import parse_count

CATALOG_DEFAULT_PAGE = 100
# The most entries of one page, whatever `n` asks (a larger n is a valid request for a full page).
MAX_PAGE = 1000
# Pages up to this size are read inline on SQLite (microseconds); larger ones off the event loop.
_INLINE_PAGE = 100
# `last` is a name or a tag from an earlier page, or a catalog cursor: printable ASCII, bounded.
_MAX_LAST = 256


def _page_size(request: Request, default: int) -> int:
    value = request.query_params.get("n")
    if value is None or value == "":
        return default
    number = parse_count(value)
    if number is None:
        raise PaginationInvalid(
            f"n must be a non-negative integer of at most 19 ASCII digits, not {value[:20]!r}"
        )
    return min(number, MAX_PAGE)


def _last(request: Request, error: type[NameInvalid] | type[TagInvalid]) -> str | None:
    value = request.query_params.get("last")
    if not value:
        return None
    if len(value) > _MAX_LAST or not value.isascii() or not value.isprintable():
        raise error(f"last must be at most {_MAX_LAST} printable ASCII characters")
    return value


def _link(path: str, limit: int, last: str) -> dict[str, str]:
    return {"Link": f'<{path}?{urlencode({"n": limit, "last": last})}>; rel="next"'}


def _page(path: str, items: list[str], limit: int) -> tuple[list[str], dict[str, str]]:
    """Items were fetched one past the limit to learn whether a next page exists; link to it when it does."""
    if len(items) <= limit or limit == 0:
        return items[:limit], {}
    items = items[:limit]
    return items, _link(path, limit, items[-1])


def _json(payload: object, headers: dict[str, str]) -> Response:
    return Response(json.dumps(payload).encode(), media_type="application/json", headers=headers)


async def list_tags(request: Request, ctx: RegistryContext, name: str, _arg: str) -> Response:
    """One page of tags, in lexical order: at most MAX_PAGE, with a Link when more follow."""
    await ctx.access.require(request, name, [PULL])
    limit = _page_size(request, MAX_PAGE)
    last = _last(request, TagInvalid)
    if limit <= _INLINE_PAGE:
        tags = await read(ctx, ctx.manifests.tags, name, last, limit + 1)
    else:
        tags = await listing_call(ctx.manifests.tags, name, last, limit + 1)
    tags, headers = _page(f"/v2/{name}/tags/list", tags, limit)
    return _json({"name": name, "tags": tags}, headers)


async def catalog(request: Request, ctx: RegistryContext, _name: str, _arg: str) -> Response:
    """One page of the repositories the caller may see, in byte order: the database walks past the others,
    so the Link's `last` is always a name on this page."""
    await ctx.access.require(request, None, [])
    limit = _page_size(request, CATALOG_DEFAULT_PAGE)
    last = _last(request, NameInvalid)
    if limit == 0:
        return _json({"repositories": []}, {})
    scope = ctx.access.scope(request)
    if scope.everything and limit <= _INLINE_PAGE:
        names = await read(ctx, ctx.listing.catalog, scope, last, limit + 1)
    else:
        # In the listing pool: up to a thousand rows, or an index walk past hidden names, off the event loop.
        names = await listing_call(ctx.listing.catalog, scope, last, limit + 1)
    page, headers = _page("/v2/_catalog", names, limit)
    return _json({"repositories": page}, headers)
