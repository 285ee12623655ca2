"""What every view needs: the services, the viewer, bounded form parsing, redirects after a POST."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse

from dockyard.auth.errors import InvalidInput, Unauthenticated
from dockyard.registry.numbers import parse_count
from dockyard.ui.session import CSRF_FIELD, Viewer, check_form, viewer

if TYPE_CHECKING:
    from dockyard.app import Services

T = TypeVar("T")

# A form is a few fields and at most a README; anything larger is refused before parsing.
MAX_FORM_BYTES = 256 * 1024
MAX_FIELDS = 40

# Messages shown after a successful POST, chosen by a code in the redirect (never text from the request).
NOTICES = {
    "created": "Created.",
    "saved": "Saved.",
    "deleted": "Deleted.",
    "revoked": "Token revoked.",
    "password": "Password changed.",
    "scan": "Scan queued.",
    "hidden": "Finding hidden.",
    "shown": "Finding shown again.",
    "signed-out": "You are signed out.",
    "granted": "Access granted.",
}


def services(request: Request) -> Services:
    """The process's domain services."""
    found: Services = request.app.state.services
    return found


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking service call off the event loop."""
    return await run_in_threadpool(fn, *args, **kwargs)


@dataclass(frozen=True)
class Form:
    """A checked POST: its fields, and the viewer who sent it."""

    fields: dict[str, str]
    viewer: Viewer

    def get(self, name: str, default: str = "") -> str:
        """A field's value, or the default."""
        return self.fields.get(name, default)


async def posted(request: Request) -> Form:
    """Parse a bounded url-encoded form and check its origin and CSRF token."""
    length = request.headers.get("content-length")
    size = parse_count(length) if length is not None else None
    if size is None or size > MAX_FORM_BYTES:
        raise InvalidInput(f"forms are limited to {MAX_FORM_BYTES // 1024} KiB", "form")
    current = await viewer(request)
    data = await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=MAX_FORM_BYTES)
    fields = {key: value for key, value in data.items() if isinstance(value, str)}
    check_form(request, current, fields.get(CSRF_FIELD, ""))
    return Form(fields, current)


def signed_in(current: Viewer) -> None:
    """Pages for signed-in viewers only (the handler sends others to the sign-in page)."""
    if not current.signed_in:
        raise Unauthenticated("sign in to see this page")


def back(path: str, notice: str | None = None, **query: str) -> RedirectResponse:
    """303 to a page of this site after a POST."""
    params = {k: v for k, v in query.items() if v}
    if notice:
        params["done"] = notice
    return RedirectResponse(path + (f"?{urlencode(params)}" if params else ""), status_code=303)


def repo_url(name: str, *rest: str) -> str:
    """The page of a repository, or one of its sub-pages (`/-/` separates name and action)."""
    base = f"/repositories/{quote(name)}"
    return base + ("/-/" + "/".join(quote(part, safe=":") for part in rest) if rest else "")


def notice(request: Request) -> str | None:
    """The message for a `done` code in the query, if any."""
    return NOTICES.get(request.query_params.get("done", ""))
