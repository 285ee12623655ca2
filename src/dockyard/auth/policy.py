"""The access policy: the one place where permissions are decided, for every surface.

Pure functions of (identity, facts about the repository, settings): the facts are gathered by
`dockyard.auth.accounts.AccountService.repo_facts`, so the rules here can be tested as a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum

from dockyard.auth.identity import Credential, FreshPassword, Identity


class Level(IntEnum):
    """Access levels, ordered: each includes everything below it."""

    NONE = 0
    READ_ONLY = 1
    READ_WRITE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The name used in the API and the database."""
        return _LABELS[self]

    @classmethod
    def parse(cls, label: str) -> Level:
        """The level named by `read-only`, `read-write` or `admin`."""
        for level, text in _LABELS.items():
            if text == label and level is not Level.NONE:
                return level
        raise ValueError(f"unknown access level {label!r}: use read-only, read-write or admin")


_LABELS = {
    Level.NONE: "none",
    Level.READ_ONLY: "read-only",
    Level.READ_WRITE: "read-write",
    Level.ADMIN: "admin",
}


class Action(StrEnum):
    """Everything one can do to a repository."""

    BROWSE = "browse"
    PULL = "pull"
    PUSH = "push"
    DELETE = "delete"  # tags and manifests
    SCAN = "scan"
    HIDE_VULNERABILITY = "hide-vulnerability"
    EDIT = "edit"  # description
    SET_VISIBILITY = "set-visibility"
    MANAGE_ACCESS = "manage-access"
    DELETE_REPOSITORY = "delete-repository"


# Each action in words, to finish "may not ..." followed by the repository's name.
ACTION_WORDS: dict[Action, str] = {
    Action.BROWSE: "see",
    Action.PULL: "pull from",
    Action.PUSH: "push to",
    Action.DELETE: "delete tags and manifests of",
    Action.SCAN: "scan",
    Action.HIDE_VULNERABILITY: "hide vulnerabilities of",
    Action.EDIT: "edit the description of",
    Action.SET_VISIBILITY: "change the visibility of",
    Action.MANAGE_ACCESS: "manage access to",
    Action.DELETE_REPOSITORY: "delete",
}

REQUIRED: dict[Action, Level] = {
    Action.BROWSE: Level.READ_ONLY,
    Action.PULL: Level.READ_ONLY,
    Action.PUSH: Level.READ_WRITE,
    Action.DELETE: Level.READ_WRITE,
    Action.SCAN: Level.READ_WRITE,
    Action.HIDE_VULNERABILITY: Level.ADMIN,
    Action.EDIT: Level.ADMIN,
    Action.SET_VISIBILITY: Level.ADMIN,
    Action.MANAGE_ACCESS: Level.ADMIN,
    Action.DELETE_REPOSITORY: Level.ADMIN,
}


class NamespaceKind(StrEnum):
    """What the first component of a repository name names."""

    USER = "user"
    ORG = "org"
    # No account of that name, or a single-component name: only administrators create there.
    NONE = "none"


@dataclass(frozen=True)
class PolicySettings:
    """The settings the policy depends on."""

    anonymous_pull: bool = False
    create_on_push: bool = True


@dataclass(frozen=True)
class RepoFacts:
    """What the policy needs to know about one repository, as seen by one identity."""

    namespace_kind: NamespaceKind
    # The account id of the namespace (user or organization), when it exists.
    namespace_id: int | None = None
    exists: bool = True
    public: bool = False
    # The identity owns the namespace's organization.
    org_owner: bool = False
    # Levels of the identity's teams: grants on this repository and on its whole namespace.
    team_levels: tuple[Level, ...] = field(default_factory=tuple)


def access_level(identity: Identity, facts: RepoFacts, settings: PolicySettings) -> Level:
    """The highest level that applies to the identity on the repository (or on the name, if not created)."""
    level = _unrestricted_level(identity, facts, settings)
    if identity.read_only:
        level = min(level, Level.READ_ONLY)
    return Level(level)


def _unrestricted_level(identity: Identity, facts: RepoFacts, settings: PolicySettings) -> Level:
    public = facts.exists and facts.public
    if identity.anonymous:
        return Level.READ_ONLY if public and settings.anonymous_pull else Level.NONE
    if identity.is_admin:
        return Level.ADMIN
    if facts.namespace_kind is NamespaceKind.USER and facts.namespace_id == identity.user_id:
        return Level.ADMIN
    if facts.namespace_kind is NamespaceKind.ORG and facts.org_owner:
        return Level.ADMIN
    levels = [*facts.team_levels, Level.READ_ONLY if public else Level.NONE]
    return max(levels)


def may_create(identity: Identity, facts: RepoFacts, settings: PolicySettings, *, on_push: bool) -> bool:
    """Whether the identity may create the (missing) repository: explicitly, or by pushing to it."""
    if facts.exists or identity.anonymous or identity.read_only:
        return False
    if on_push and not settings.create_on_push:
        return False
    return _unrestricted_level(identity, facts, settings) >= Level.READ_WRITE


def may(identity: Identity, facts: RepoFacts, action: Action, settings: PolicySettings) -> bool:
    """Whether the identity may perform the action. A push to a missing repository means creating it."""
    if not facts.exists:
        if action is Action.PUSH:
            return may_create(identity, facts, settings, on_push=True)
        # Nothing to read or change yet; owners get NAME_UNKNOWN from the surface rather than DENIED.
        return access_level(identity, facts, settings) >= REQUIRED[action]
    return access_level(identity, facts, settings) >= REQUIRED[action]


def allowed_actions(
    identity: Identity, facts: RepoFacts, actions: list[Action], settings: PolicySettings
) -> list[Action]:
    """The subset of the actions the identity may perform, in the order asked."""
    return [action for action in actions if may(identity, facts, action, settings)]


def may_browse_everything(identity: Identity) -> bool:
    """Whether the identity may browse every repository whatever its facts (so none need loading)."""
    return identity.is_admin


@dataclass(frozen=True)
class BrowseScope:
    """The BROWSE rule of `access_level`, restated over sets so that listings filter in the database.

    A repository is visible when `everything`; or when it is public and `public`; or, for the signed-in
    user `user_id`, when it lies in the user's own namespace, or in an organization's namespace that the
    user owns or where a team of the user holds a namespace grant, or when a team of the user holds a
    grant on the repository itself and its namespace is an organization. Any grant allows browsing (every
    level includes read-only) and a read-only token browses what its user browses.
    `dockyard.db.listing.visible_clause` is the SQL of this rule; tests/db/test_visibility_sql.py compares
    it with `may(..., Action.BROWSE, ...)` over a generated matrix, so a change here that the SQL does not
    follow fails there.
    """

    everything: bool
    public: bool
    user_id: int | None


def browse_scope(identity: Identity, settings: PolicySettings) -> BrowseScope:
    """Which repositories the identity may browse, as sets a query can select."""
    if identity.anonymous:
        return BrowseScope(everything=False, public=settings.anonymous_pull, user_id=None)
    return BrowseScope(everything=may_browse_everything(identity), public=True, user_id=identity.user_id)


def may_administer(identity: Identity) -> bool:
    """Whether the identity may manage accounts, organizations and the audit log of the whole registry."""
    return identity.is_admin and not identity.read_only


def may_manage_organization(identity: Identity, *, owner: bool) -> bool:
    """Whether the identity may manage an organization's owners, teams, members and namespace grants."""
    return not identity.read_only and (identity.is_admin or owner)


def may_manage_self(identity: Identity) -> bool:
    """Whether the identity may change its own settings, password and tokens."""
    return not identity.anonymous and not identity.read_only


def may_change_own_password(identity: Identity) -> bool:
    """Whether the identity may change its own password: only when it proved the password itself, never
    through a personal access token (a leaked token must not become the account)."""
    return may_manage_self(identity) and identity.token_id is None


def may_view_account(identity: Identity, name: str) -> bool:
    """Whether the identity may see a user's account: their own, or any for administrators."""
    return not identity.anonymous and (identity.is_admin or identity.name == name)


def refusal(identity: Identity, facts: RepoFacts, action: Action, settings: PolicySettings, name: str) -> str:
    """Why `may` said no, in words: names a read-only token when that alone stands in the way."""
    words = ACTION_WORDS[action]
    if identity.read_only and may(replace(identity, read_only=False), facts, action, settings):
        return f"this access token is read-only: it may not {words} {name}"
    return f"{identity.name or 'an anonymous caller'} may not {words} {name}"


def proved_password(identity: Identity, fresh: FreshPassword | None = None) -> bool:
    """Whether the caller proved its password for a sensitive change of its own account (password, new
    access token): with this very request (Basic), or just now (`fresh`). A session or a token alone could
    have been stolen."""
    if identity.credential is Credential.PASSWORD:
        return True
    return fresh is not None and identity.user_id is not None and fresh.user_id == identity.user_id
