"""The access hook of the /v2/ surface. Decisions themselves belong to the access policy (auth)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from starlette.requests import Request

from dockyard.auth.policy import BrowseScope

if TYPE_CHECKING:
    from dockyard.auth.identity import Identity

PULL = "pull"
PUSH = "push"
DELETE = "delete"


class AccessDenied(Exception):
    """The caller is known but may not do this (403 DENIED)."""


class AuthenticationRequired(Exception):
    """The caller must (re)authenticate; `challenge` is the WWW-Authenticate value (401 UNAUTHORIZED)."""

    def __init__(self, message: str, challenge: str) -> None:
        super().__init__(message)
        self.challenge = challenge


class TooManyRequests(Exception):
    """The caller must wait `retry_after` seconds, e.g. after repeated failed logins (429)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Access(Protocol):
    """Decides, for one request, whether the caller may act on a repository."""

    async def require(
        self, request: Request, name: str | None, actions: Sequence[str], extra_scopes: Sequence[str] = ()
    ) -> None:
        """Return when allowed; raise AuthenticationRequired, AccessDenied or TooManyRequests otherwise.

        `extra_scopes` are further token scopes a challenge asks for, beyond `actions` on `name`: a
        mount's pull on its source repository, so one token covers the whole request.
        """

    def scope(self, request: Request) -> BrowseScope:
        """Which repositories the caller may see (for the catalog), once `require` identified it."""


def caller(request: Request) -> Identity | None:
    """Who the access hook found behind the request (None when no access control identified anyone): the
    services record their audit events under this identity."""
    found: Identity | None = getattr(request.state, "identity", None)
    return found


class OpenAccess:
    """Everyone may do everything: the registry with no access control configured."""

    async def require(
        self, request: Request, name: str | None, actions: Sequence[str], extra_scopes: Sequence[str] = ()
    ) -> None:
        """Always allowed."""

    def scope(self, request: Request) -> BrowseScope:
        """Everything is visible."""
        return BrowseScope(everything=True, public=True, user_id=None)
