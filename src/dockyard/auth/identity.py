"""Who is asking: anonymous, or a user (possibly through a personal access token)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Credential(StrEnum):
    """What the caller proved itself with, for rules that depend on it (a fresh password)."""

    NONE = "none"
    PASSWORD = "password"  # noqa: S105 (a kind of credential, not a secret)
    ACCESS_TOKEN = "access_token"  # noqa: S105
    SESSION = "session"
    REGISTRY_TOKEN = "registry_token"  # noqa: S105
    REFRESH_TOKEN = "refresh_token"  # noqa: S105


@dataclass(frozen=True)
class Identity:
    """The caller of one request. `user_id is None` means anonymous."""

    user_id: int | None = None
    name: str | None = None
    is_admin: bool = False
    # Set when the caller authenticated with a personal access token.
    token_id: int | None = None
    read_only: bool = False
    # How this request proved the identity (NONE for identities built by services and tests).
    credential: Credential = Credential.NONE
    # Where the request came from, set by the surface that resolved the caller: the services' audit events
    # name it (None for the command line, services and tests).
    address: str | None = field(default=None, compare=False)

    @property
    def anonymous(self) -> bool:
        """True for a caller without credentials."""
        return self.user_id is None


ANONYMOUS = Identity()


@dataclass(frozen=True)
class FreshPassword:
    """Evidence that the password of user `user_id` was just checked, for a sensitive change of that
    account (dockyard.auth.authenticate.Authenticator.confirm_password hands it out)."""

    user_id: int
