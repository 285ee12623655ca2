"""Paging for every list of the API: `limit` (at most MAX_PAGE) and `after` (a cursor), the next page's URL
in a `Link: <...>; rel="next"` header, as /v2/ lists do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Response

from dockyard.content.listing import MAX_PAGE

T = TypeVar("T")
DEFAULT_PAGE = 100
# Audit events are small rows read by administrators with an index on the id: larger pages are fine.
MAX_AUDIT_PAGE = 1000

Limit = Annotated[
    int, Query(ge=1, le=MAX_PAGE, description=f"At most this many items (default {DEFAULT_PAGE})")
]
AFTER = "Where to continue: from the previous page's Link"
After = Annotated[str | None, Query(min_length=1, max_length=512, description=AFTER)]

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


def link_next(request: Request, response: Response, cursor: str | None, name: str = "after") -> None:
    """Point at the next page, when there is one."""
    if cursor is not None:
        url = request.url.include_query_params(**{name: cursor})
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'


class PageQuery:
    """The paging of one list request: ask the service for `fetch` items after `after`, then `page` them."""

    def __init__(
        self, request: Request, response: Response, after: After = None, limit: Limit = DEFAULT_PAGE
    ) -> None:
        self.request = request
        self.response = response
        self.after = after
        self.limit = limit
        # One more than the page: whether it is there tells if a next page exists.
        self.fetch = limit + 1

    def link(self, cursor: str | None) -> None:
        """Link the next page of a service's own paging, when there is one."""
        link_next(self.request, self.response, cursor)

    def page(self, items: list[T], key: Callable[[T], str]) -> list[T]:
        """The first `limit` items of a query for `fetch`; links the next page when there is one."""
        if len(items) <= self.limit:
            return items
        link_next(self.request, self.response, key(items[self.limit - 1]))
        return items[: self.limit]


Paging = Annotated[PageQuery, Depends(PageQuery)]
