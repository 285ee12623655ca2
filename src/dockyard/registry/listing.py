"""Paginated lists: GET /v2/<name>/tags/list and GET /v2/_catalog.

Every request does bounded database work whatever it asks: a page holds at most MAX_PAGE entries, and
the catalog, which hides what the caller may not see, reads at most CATALOG_SCAN_LIMIT candidates; when
they run out before the page is full it answers with fewer names and a Link to go on (the specification
lets a page hold fewer than `n`).
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
# Candidates read per catalog request at most (after the first page, in batches of at least
# CATALOG_SCAN_BATCH) for a caller who may not see everything: the bound on its database and policy work.
CATALOG_SCAN_LIMIT = 2000
CATALOG_SCAN_BATCH = 500
# Pages up to this size are read inline on SQLite (microseconds); larger ones off the event loop.
_INLINE_PAGE = 100
# `last` is a name or a tag from an earlier page, or a catalog cursor: printable ASCII, bounded.
_MAX_LAST = 256
# Sorts after every character a repository name may hold: see _cursor_between.
_AFTER_NAME_CHARACTERS = "~"


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
    """One page of the repositories the caller may see, read in bounded batches."""
    await ctx.access.require(request, None, [])
    limit = _page_size(request, CATALOG_DEFAULT_PAGE)
    last = _last(request, NameInvalid)
    if limit == 0:
        return _json({"repositories": []}, {})
    names: list[str] = []
    scanned: list[str] = []
    # The first batch is the page itself (all of it, when the caller sees everything); later ones, read
    # only when names were hidden, are larger, until the request's budget of candidates is spent.
    size = limit + 1
    while True:
        batch = await _candidates(ctx, scanned[-1] if scanned else last, size)
        names += await ctx.access.visible(request, batch)
        if len(names) > limit or len(batch) < size:
            return _json(*_catalog_page(names, limit))
        scanned += batch
        if len(scanned) >= CATALOG_SCAN_LIMIT:
            break
        size = min(max(limit + 1, CATALOG_SCAN_BATCH), CATALOG_SCAN_LIMIT - len(scanned))
    # Candidates ran out before the page filled: go on from where the scan stopped, without naming a
    # repository the caller cannot see.
    following = await listing_call(ctx.manifests.catalog, scanned[-1], 1)
    if not following:
        return _json({"repositories": names}, {})
    cursor = _resume_cursor(scanned + following, set(names))
    return _json({"repositories": names}, _link("/v2/_catalog", limit, cursor))


async def _candidates(ctx: RegistryContext, last: str | None, size: int) -> list[str]:
    if size <= _INLINE_PAGE + 1:
        return await read(ctx, ctx.manifests.catalog, last, size)
    # In the listing pool: up to a thousand rows, off the event loop.
    return await listing_call(ctx.manifests.catalog, last, size)


def _catalog_page(names: list[str], limit: int) -> tuple[dict[str, list[str]], dict[str, str]]:
    page, headers = _page("/v2/_catalog", names, limit)
    return {"repositories": page}, headers


def _resume_cursor(candidates: list[str], shown: set[str]) -> str:
    """A `last` value after the scanned candidates (all but the final one, which is unread).

    The last candidate scanned may be a repository the caller cannot see, so the Link must not carry its
    name. Walking back from the end: a name the caller was shown is a cursor that reveals nothing; else
    the shortest string between a scanned name and the next one, when the first is not a prefix of the
    second (every string between them would start with it). That separator is their shared prefix, one
    more character of the first, and a character sorting after every name character: it tells where
    the scan stopped, not a name. Names are at most 255 characters, so a prefix chain is short and a cut
    is found in the 2,000 candidates; names after it are read again by the next request.
    """
    for index in range(len(candidates) - 2, -1, -1):
        scanned, following = candidates[index], candidates[index + 1]
        if scanned in shown:
            return scanned
        if not following.startswith(scanned):
            shared = 0
            while scanned[shared] == following[shared]:
                shared += 1
            return scanned[: shared + 1] + _AFTER_NAME_CHARACTERS
    return candidates[-2]
