"""Browsing routes: repository search, tags, untagged manifests; deleting one tag or one untagged manifest.

Registered before the repository routes, whose `{name:path}` would otherwise take these longer paths.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, status

from dockyard.api import models as m
from dockyard.api.deps import Caller, User
from dockyard.api.errors import documented
from dockyard.api.paging import PAGED, Paging
from dockyard.auth.errors import InvalidInput
from dockyard.content.digests import Digest, parse_digest
from dockyard.content.errors import ContentError
from dockyard.content.listing import RepositoryBrowser
from dockyard.content.names import validate_tag
from dockyard.db.listing import ManifestListing, RepositoryListing, TagListing

router = APIRouter(tags=["repositories"], responses=documented())
REPOSITORY = "/repositories/{name:path}"
NO_CONTENT = status.HTTP_204_NO_CONTENT


def browser(request: Request) -> RepositoryBrowser:
    """The browsing service of this API."""
    found: RepositoryBrowser = request.app.state.browser
    return found


Browser = Annotated[RepositoryBrowser, Depends(browser)]


def repository_out(row: RepositoryListing) -> m.RepositoryOut:
    """A repository as the API shows it."""
    namespace, sep, _ = row.name.partition("/")
    return m.RepositoryOut(
        name=row.name,
        namespace=namespace if sep else None,
        visibility="public" if row.visibility == "public" else "private",
        description=row.description,
        created_at=row.created_at,
        scan_on_push=row.scan_on_push,
        last_pushed_at=row.last_pushed_at or None,
    )


def _tag_out(row: TagListing) -> m.TagOut:
    # The listing's attributes the API names (not the manifest bytes or platform the web UI reads).
    return m.TagOut.model_validate(row, from_attributes=True)


def _manifest_out(row: ManifestListing) -> m.ManifestOut:
    return m.ManifestOut(**row.__dict__)


@router.get("/repositories", response_model=list[m.RepositoryOut], responses=PAGED)
def search_repositories(
    browse: Browser,
    identity: Caller,
    paging: Paging,
    q: Annotated[str | None, Query(max_length=255, description="Part of the name (substring)")] = None,
    namespace: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    visibility: m.Visibility | None = None,
    sort: Annotated[
        Literal["name", "last-push"], Query(description="By name, or by last push (newest first)")
    ] = "name",
) -> list[m.RepositoryOut]:
    """Repositories the caller may see, optionally filtered by name, namespace and visibility; paged."""
    page = browse.search(
        identity,
        contains=q,
        namespace=namespace,
        visibility=visibility,
        sort=sort,
        after=paging.after,
        limit=paging.limit,
    )
    paging.link(page.next)
    return [repository_out(row) for row in page.items]


@router.get(REPOSITORY + "/tags", response_model=list[m.TagOut], responses={**PAGED, **documented(403, 404)})
def list_tags(
    name: str,
    browse: Browser,
    identity: Caller,
    paging: Paging,
) -> list[m.TagOut]:
    """The repository's tags in byte order, each with its manifest's digest, type, size and push time."""
    page = browse.tags(identity, name, paging.after, paging.limit)
    paging.link(page.next)
    return [_tag_out(row) for row in page.items]


@router.delete(REPOSITORY + "/tags/{tag}", status_code=NO_CONTENT, responses=documented(403, 404))
def delete_tag(
    name: str,
    tag: Annotated[str, Path(max_length=128)],
    browse: Browser,
    identity: User,
) -> None:
    """Delete this tag alone: the manifest stays (untagged when no other tag points at it), and so do the
    other tags that share its digest (read-write access)."""
    browse.delete_tag(identity, name, validate_tag(tag))


@router.get(
    REPOSITORY + "/untagged-manifests",
    response_model=list[m.ManifestOut],
    responses={**PAGED, **documented(403, 404)},
)
def list_untagged(
    name: str,
    browse: Browser,
    identity: Caller,
    paging: Paging,
) -> list[m.ManifestOut]:
    """The repository's manifests no tag points at and nothing else in it needs (no index lists them;
    signatures and other referrers belong to their subject), by digest."""
    page = browse.untagged(identity, name, paging.after, paging.limit)
    paging.link(page.next)
    return [_manifest_out(row) for row in page.items]


def _digest(value: str) -> Digest:
    try:
        return parse_digest(value)
    except ContentError as exc:
        raise InvalidInput(f"{value!r} is not a digest (algorithm:hex)", "digest") from exc


@router.delete(
    REPOSITORY + "/manifests/{digest}", status_code=NO_CONTENT, responses=documented(403, 404, 409)
)
def delete_untagged(
    name: str,
    digest: Annotated[str, Path(max_length=200)],
    browse: Browser,
    identity: User,
) -> None:
    """Delete an untagged manifest by digest (read-write access); 409 while a tag points at it or an index
    lists it: delete those first."""
    browse.delete_untagged(identity, name, _digest(digest))
