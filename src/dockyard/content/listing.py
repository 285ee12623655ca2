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


class RepositoryBrowser:
    """Repositories, tags and untagged manifests as a caller may see them."""

    def __init__(self, repositories: RepositoryService, manifests: ManifestService) -> None:
        self.repositories = repositories
        self.permissions = repositories.permissions
        self.manifests = manifests
        self.db = manifests.db

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
        and one visibility, by name or by last push (newest first). Counts nothing: a private repository the
        caller may not see leaves no trace, not even in a total."""
        limit = max(1, min(limit, MAX_PAGE))
        by_push = sort == "last-push"
        position = _parse_cursor(after, sort)
        found: list[RepositoryListing] = []
        examined = 0
        while len(found) < limit:
            with self.db.read() as conn:
                window = q.repository_window(
                    conn,
                    by_push=by_push,
                    after=position,
                    size=WINDOW,
                    contains=contains,
                    namespace=namespace,
                    visibility=visibility,
                )
            examined += WINDOW
            visible = self._visible(identity, window.rows)
            if len(found) + len(visible) > limit:
                found += visible[: limit - len(found)]
                last = found[-1]
                return Page(found, _push_cursor(last) if by_push else last.name)
            found += visible
            position = window.last
            if position is None:
                return Page(found, None)
            if examined >= MAX_EXAMINED:
                break
        assert position is not None
        return Page(found, f"{position[0]!r},{position[1]}" if by_push else position[1])

    def _visible(self, identity: Identity, rows: list[RepositoryListing]) -> list[RepositoryListing]:
        if p.may_browse_everything(identity) or not rows:
            return rows
        facts = self.permissions.facts_many(identity, [row.name for row in rows])
        settings = self.permissions.policy_settings
        return [row for row in rows if p.may(identity, facts[row.name], p.Action.BROWSE, settings)]

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
        other tags that share its digest. Returns the digest the tag pointed at."""
        self.repositories.require(identity, name, p.Action.DELETE)
        return self.manifests.untag(name, tag, identity)

    def delete_untagged(self, identity: Identity, name: str, digest: Digest) -> None:
        """Delete a manifest no tag points at (Conflict while one does, or while an index lists it)."""
        self.repositories.require(identity, name, p.Action.DELETE)
        tagged = self.manifests.delete_untagged(name, digest, identity)
        if tagged:
            shown = ", ".join(tagged[:5]) + (f" and {len(tagged) - 5} more" if len(tagged) > 5 else "")
            raise Conflict(f"{digest} is still tagged ({shown}); delete those tags first", "digest")
