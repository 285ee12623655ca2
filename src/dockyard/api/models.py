"""Request and response bodies of /api/v1."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, PlainSerializer


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    """A time as RFC 3339 in UTC with `Z`, to the millisecond."""
    return _utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Every time the API returns: RFC 3339, UTC, `Z`. Accepts datetimes and Unix times (what the services hold).
Timestamp = Annotated[
    datetime,
    AfterValidator(_utc),
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
    Field(json_schema_extra={"format": "date-time", "example": "2026-01-31T12:00:00.000Z"}),
]
# The largest integer SQL stores (signed 64 bits): every integer input is bounded by it before reaching SQL.
INT64_MAX = 2**63 - 1

LevelName = Literal["read-only", "read-write", "admin"]
Visibility = Literal["public", "private"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Login(_In):
    """Credentials for a browser session."""

    # Accounts are named `name` everywhere; `username` is still accepted here for older clients.
    name: str = Field(min_length=1, max_length=64, validation_alias=AliasChoices("name", "username"))
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    """A new session: send `csrf_token` back in X-CSRF-Token with every unsafe request."""

    name: str = Field(description="The user logged in")
    csrf_token: str
    expires_in: int


class UserOut(BaseModel):
    """A local user."""

    name: str
    full_name: str
    is_admin: bool
    is_active: bool
    created_at: Timestamp


class MeOut(UserOut):
    """The current user, with their organizations and how they authenticated."""

    organizations: list[str]
    via_access_token: bool
    read_only: bool
    cache: str | None = None


class UserCreate(_In):
    """A new user (administrators)."""

    name: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    full_name: str = Field(default="", max_length=255)
    is_admin: bool = False


class UserPatch(_In):
    """Changes to a user (administrators)."""

    full_name: str | None = Field(default=None, max_length=255)
    is_admin: bool | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024)


class MePatch(_In):
    """The current user's settings; fields left out stay as they are."""

    full_name: str | None = Field(default=None, max_length=255)
    # The content cache that serves the user's pulls (GET /caches lists them); null for none.
    cache: str | None = Field(default=None, max_length=64)


class PasswordChange(_In):
    """A new password, proven with the current one."""

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


class TokenCreate(_In):
    """A new personal access token."""

    name: str = Field(min_length=1, max_length=100)
    read_only: bool = False
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    # Needed unless the request itself carries the password (Basic): a session or token could be stolen.
    current_password: str | None = Field(default=None, min_length=1, max_length=1024)


class TokenOut(BaseModel):
    """A personal access token (never its secret)."""

    id: str
    name: str
    read_only: bool
    created_at: Timestamp
    expires_at: Timestamp | None
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None


class TokenCreated(TokenOut):
    """A token just created: `token` is shown this once."""

    token: str


class OrganizationCreate(_In):
    """A new organization (administrators)."""

    name: str = Field(min_length=2, max_length=64)
    full_name: str = Field(default="", max_length=255)
    owners: list[str] = Field(default_factory=list, max_length=100)


class OrganizationOut(BaseModel):
    """An organization and its owners."""

    name: str
    full_name: str
    owners: list[str]
    created_at: Timestamp


class TeamCreate(_In):
    """A new team."""

    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=1000)


class TeamOut(BaseModel):
    """A team."""

    name: str
    description: str
    namespace_access: LevelName | None = None


class LevelIn(_In):
    """An access level."""

    level: LevelName


class GrantOut(BaseModel):
    """One team's access to one repository."""

    repository: str
    team: str
    level: LevelName


class RepositoryCreate(_In):
    """A new repository: `namespace/name`."""

    name: str = Field(min_length=1, max_length=255)
    visibility: Visibility = "private"
    description: str = Field(default="", max_length=10000)
    scan_on_push: bool | None = Field(default=None, description="Left out: the system's default")


class RepositoryPatch(_In):
    """Changes to a repository (its administrators)."""

    visibility: Visibility | None = None
    description: str | None = Field(default=None, max_length=10000)
    scan_on_push: bool | None = None


class RepositoryOut(BaseModel):
    """A repository."""

    name: str
    namespace: str | None
    visibility: Visibility
    description: str
    created_at: Timestamp
    scan_on_push: bool
    last_pushed_at: Timestamp | None = Field(default=None, description="The last manifest push; null: never")


class TagOut(BaseModel):
    """A tag and the manifest it points at."""

    name: str
    digest: str
    media_type: str
    size: int = Field(description="Of the manifest itself, in bytes")
    artifact_type: str | None
    pushed_at: Timestamp
    pushed_by: str | None = Field(default=None, description="Who last moved the tag here; null: unknown")
    platform: str | None = Field(
        default=None,
        description="An image's os/architecture[/variant] from its config; null: an index, an artifact, "
        "or an image pushed before platforms were recorded",
    )


class ManifestOut(BaseModel):
    """A manifest of a repository."""

    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    created_at: Timestamp


class AuditEventOut(BaseModel):
    """One audit event."""

    id: int
    at: Timestamp
    actor: str | None
    address: str | None
    action: str
    target: str | None
    outcome: str
    detail: dict[str, Any]
