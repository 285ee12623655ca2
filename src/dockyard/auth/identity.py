"""Who is asking: anonymous, or a user (possibly through a personal access token)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """The caller of one request. `user_id is None` means anonymous."""

    user_id: int | None = None
    name: str | None = None
    is_admin: bool = False
    # Set when the caller authenticated with a personal access token.
    token_id: int | None = None
    read_only: bool = False

    @property
    def anonymous(self) -> bool:
        """True for a caller without credentials."""
        return self.user_id is None


ANONYMOUS = Identity()
