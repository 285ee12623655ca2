"""Paging for every list of the API: `limit` (at most MAX_PAGE) and `after` (a cursor), the next page's URL
in a `Link: <...>; rel="next"` header, as /v2/ lists do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Query, Request, Response

from dockyard.content.listing import MAX_PAGE

T = TypeVar("T")
DEFAULT_PAGE = 100

Limit = Annotated[
    int, Query(ge=1, le=MAX_PAGE, description=f"At most this many items (default {DEFAULT_PAGE})")
]
After = Annotated[
    str | None,
    Query(
        min_length=1, max_length=512, description='Where to continue: from the previous page\'s "next" Link'
    ),
]

# For the schema: the header a paged list answers with.
PAGED: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            "Link": {
                "description": 'The next page, `<url>; rel="next"`; absent on the last page. A page may hold '
                "fewer items than `limit` and still have a next one.",
                "schema": {"type": "string"},
            }
        }
    }
}


def page_of(items: list[T], limit: int, key: Callable[[T], str]) -> tuple[list[T], str | None]:
    """The first `limit` items and the cursor after them, from a query that asked for `limit + 1`."""
    if len(items) > limit:
        return items[:limit], key(items[limit - 1])
    return items, None


def link_next(request: Request, response: Response, cursor: str | None) -> None:
    """Point at the next page, when there is one."""
    if cursor is not None:
        url = request.url.include_query_params(after=cursor)
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
