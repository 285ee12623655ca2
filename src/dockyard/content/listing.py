"""Browsing a registry for the API and the web UI: repository search, tags, untagged manifests, and deleting
one tag or one untagged manifest. The access policy decides every row shown and every deletion; each request
examines a bounded number of rows, however many the caller may not see."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

from dockyard.auth import policy as p
from dockyard.auth.errors import Conflict, InvalidInput, NotFound
from dockyard.auth.identity import Identity
from dockyard.content.digests import Digest
from dockyard.content.names import validate_tag
from dockyard.db import listing as q
from dockyard.db.listing import ManifestListing, RepositoryListing, TagListing

if TYPE_CHECKING:
    from dockyard.content.manifests import ManifestService
    from dockyard.content.repositories import RepositoryService

T = TypeVar("T")
Sort = Literal["name", "last-push"]

# The most rows one page may hold, and the most rows one request examines to fill it.
MAX_PAGE = 500
WINDOW = 500
MAX_EXAMINED = 5000
# A numbered list counts at most this many rows (a longer one says "more than"), and pages within them.
MAX_COUNTED = 10_000
# The most namespaces a list offers as filters.
MAX_NAMESPACES = 500


@dataclass(frozen=True)
class Page(Generic[T]):
    """Some items, and the cursor of the next page (None: there is none). A page may hold fewer items than
    asked and still have a next one, when the rows examined ran out before the page filled."""

    items: list[T]
    next: str | None


def _push_cursor(listing: RepositoryListing) -> str:
    return f"{listing.last_pushed_at!r},{listing.name}"


def _parse_cursor(after: str | None, sort: Sort) -> tuple[float, str] | None:
    if after is None:
        return None
    if sort == "name":
        return (0.0, after)
    at, sep, name = after.partition(",")
    try:
        value = float(at)
    except ValueError:
        value = math.nan
    if not sep or not math.isfinite(value):
        raise InvalidInput("not a cursor this list returned", "after")
    return (value, name)


@dataclass(frozen=True)
class NumberedPage:
    """Page `page` of `pages` of a list, with how many rows passed its filters (at most MAX_COUNTED: a
    larger list says `more`) and the namespaces its viewer may filter by."""

    items: list[RepositoryListing]
    total: int
    more: bool
    page: int
    pages: int
    namespaces: list[str]


class RepositoryBrowser:
    """Repositories, tags and untagged manifests as a caller may see them: the one listing service of the
    API, the web UI and the catalog. Which repositories a caller sees is decided in the database by the
    SQL of the policy's browse rule (`policy.browse_scope`, `db.listing.visible_clause`), so a page costs
    a fixed number of statements and no row the caller may not see leaves the database."""

    def __init__(self, repositories: RepositoryService, manifests: ManifestService) -> None:
        self.repositories = repositories
        self.permissions = repositories.permissions
        self.manifests = manifests
        self.db = manifests.db

    def scope(self, identity: Identity) -> p.BrowseScope:
        """Which repositories the identity may browse, as the listing queries take it."""
        return p.browse_scope(identity, self.permissions.policy_settings)

    def search(
        self,
        identity: Identity,
        *,
        contains: str | None = None,
        namespace: str | None = None,
        visibility: str | None = None,
        sort: Sort = "name",
        after: str | None = None,
        limit: int = 100,
    ) -> Page[RepositoryListing]:
        """Repositories the identity may browse whose name contains `contains`, optionally of one namespace
        and one visibility, by name or by last push (newest first), after the cursor `after`. Counts
        nothing, and every cursor names a repository the caller may browse. By name, no row the caller may
        not see is read at all (`visible_by_name`); by last push, the database skips them."""
        limit = max(1, min(limit, MAX_PAGE))
        by_push = sort == "last-push"
        position = _parse_cursor(after, sort)
        filters = q.Filters(contains=contains, namespace=namespace, visibility=visibility)
        scope = self.scope(identity)
        with self.db.read() as conn:
            if by_push:
                rows = q.repositories_page(
                    conn, scope, filters, by_push=True, after=position, limit=limit + 1
                )
            else:
                rows = q.visible_by_name(conn, scope, filters, after, limit + 1)
        return self._keyset(rows, limit, by_push)

    @staticmethod
    def _keyset(rows: list[RepositoryListing], limit: int, by_push: bool) -> Page[RepositoryListing]:
        if len(rows) <= limit:
            return Page(rows, None)
        last = rows[limit - 1]
        return Page(rows[:limit], _push_cursor(last) if by_push else last.name)

    def numbered(
        self,
        identity: Identity,
        filters: q.Filters,
        *,
        by_push: bool,
        page: int,
        per_page: int,
    ) -> NumberedPage:
        """Page `page` (from 1, clamped) of the repositories the identity may browse that pass the filters,
        with the count and the namespaces on offer, which come from those repositories only. Four
        statements; no page starts beyond the MAX_COUNTED-th row."""
        per_page = max(1, min(per_page, MAX_PAGE))
        scope = self.scope(identity)
        with self.db.read() as conn:
            total = q.count_repositories(conn, scope, filters, MAX_COUNTED)
            more = total > MAX_COUNTED
            total = min(total, MAX_COUNTED)
            pages = max(1, -(-total // per_page))
            page = min(max(page, 1), pages)
            items = q.repositories_page(
                conn, scope, filters, by_push=by_push, offset=(page - 1) * per_page, limit=per_page
            )
            namespaces = q.visible_namespaces(conn, scope, MAX_NAMESPACES)
        return NumberedPage(items, total, more, page, pages, namespaces)

    def visible(self, identity: Identity) -> list[RepositoryListing]:
        """Every repository the identity may browse, by name: one statement (for figures over all of them)."""
        with self.db.read() as conn:
            return q.repositories_page(conn, self.scope(identity), q.Filters(), by_push=False, limit=None)

    def catalog(self, scope: p.BrowseScope, last: str | None, limit: int) -> list[str]:
        """Up to `limit` names `scope` may browse after `last`, in byte order (the /v2/ catalog)."""
        if scope.everything:
            return self.manifests.catalog(last, limit)
        with self.db.read() as conn:
            return q.visible_names(conn, scope, last, limit)

    def repository(self, identity: Identity, name: str) -> RepositoryListing:
        """One repository the identity may browse."""
        self.repositories.require(identity, name, p.Action.BROWSE)
        with self.db.read() as conn:
            found = q.repository_listing(conn, name)
        if found is None:
            raise NotFound(f"no repository named {name}")
        return found

    def tags(self, identity: Identity, name: str, after: str | None, limit: int) -> Page[TagListing]:
        """A page of the repository's tags, in byte order, with the manifest each points at."""
        repo = self.repositories.require(identity, name, p.Action.BROWSE)
        limit = max(1, min(limit, MAX_PAGE))
        with self.db.read() as conn:
            rows = q.tags_page(conn, repo.id, after, limit + 1)
        if len(rows) > limit:
            return Page(rows[:limit], rows[limit - 1].name)
        return Page(rows, None)

    def untagged(self, identity: Identity, name: str, after: str | None, limit: int) -> Page[ManifestListing]:
        """A page of the repository's manifests that no tag points at and nothing else in the repository
        needs (no index lists them; referrers such as signatures belong to their subject), by digest."""
        repo = self.repositories.require(identity, name, p.Action.BROWSE)
        limit = max(1, min(limit, MAX_PAGE))
        found: list[ManifestListing] = []
        position, examined = after, 0
        while True:
            with self.db.read() as conn:
                window = q.untagged_window(conn, repo.id, position, WINDOW)
            examined += WINDOW
            if len(found) + len(window.rows) > limit:
                found += window.rows[: limit - len(found)]
                return Page(found, found[-1].digest)
            found += window.rows
            if window.last is None:
                return Page(found, None)
            position = window.last[1]
            if len(found) == limit or examined >= MAX_EXAMINED:
                return Page(found, position)

    def delete_tag(self, identity: Identity, name: str, tag: str) -> str:
        """Delete this tag alone; the manifest stays (untagged if no other tag points at it), and so do the
        other tags that share its digest. Returns the digest the tag pointed at (audited by the manifest
        service)."""
        validate_tag(tag)
        self.repositories.require(identity, name, p.Action.DELETE)
        return self.manifests.untag(name, tag, identity)

    def delete_untagged(self, identity: Identity, name: str, digest: Digest) -> None:
        """Delete a manifest no tag points at (Conflict while one does, or while an index lists it)."""
        self.repositories.require(identity, name, p.Action.DELETE)
        tagged = self.manifests.delete_untagged(name, digest, identity)
        if tagged:
            shown = ", ".join(tagged[:5]) + (f" and {len(tagged) - 5} more" if len(tagged) > 5 else "")
            raise Conflict(f"{digest} is still tagged ({shown}); delete those tags first", "digest")
