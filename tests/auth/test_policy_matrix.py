"""The permission matrix through the policy function: every account level x action x visibility."""

from __future__ import annotations

import pytest

from dockyard.auth.identity import ANONYMOUS, Identity
from dockyard.auth.policy import (
    Action,
    Level,
    NamespaceKind,
    PolicySettings,
    RepoFacts,
    access_level,
    may,
    may_create,
)

A = Action
READ = {A.BROWSE, A.PULL}
WRITE = READ | {A.PUSH, A.DELETE, A.SCAN}
ADMIN = set(Action)
NOTHING: set[Action] = set()

USER = Identity(user_id=10, name="someone")
OWNER_ID = 20
ORG_ID = 30

# (account level, identity, facts on an organization repository other than visibility)
SUBJECTS: dict[str, tuple[Identity, RepoFacts]] = {
    "anonymous": (ANONYMOUS, RepoFacts(NamespaceKind.ORG, ORG_ID)),
    "authenticated": (USER, RepoFacts(NamespaceKind.ORG, ORG_ID)),
    "team read-only": (USER, RepoFacts(NamespaceKind.ORG, ORG_ID, team_levels=(Level.READ_ONLY,))),
    "team read-write": (USER, RepoFacts(NamespaceKind.ORG, ORG_ID, team_levels=(Level.READ_WRITE,))),
    "team admin": (USER, RepoFacts(NamespaceKind.ORG, ORG_ID, team_levels=(Level.ADMIN,))),
    "organization owner": (USER, RepoFacts(NamespaceKind.ORG, ORG_ID, org_owner=True)),
    "namespace owner": (Identity(user_id=OWNER_ID, name="alice"), RepoFacts(NamespaceKind.USER, OWNER_ID)),
    "system administrator": (
        Identity(user_id=1, name="admin", is_admin=True),
        RepoFacts(NamespaceKind.ORG, ORG_ID),
    ),
}

# What each level may do: (private repository, public repository), with anonymous pull off.
EXPECTED: dict[str, tuple[set[Action], set[Action]]] = {
    "anonymous": (NOTHING, NOTHING),
    "authenticated": (NOTHING, READ),
    "team read-only": (READ, READ),
    "team read-write": (WRITE, WRITE),
    "team admin": (ADMIN, ADMIN),
    "organization owner": (ADMIN, ADMIN),
    "namespace owner": (ADMIN, ADMIN),
    "system administrator": (ADMIN, ADMIN),
}

CASES = [
    (subject, visibility, action)
    for subject in SUBJECTS
    for visibility in ("private", "public")
    for action in Action
]


def _facts(subject: str, visibility: str) -> tuple[Identity, RepoFacts]:
    identity, facts = SUBJECTS[subject]
    return identity, RepoFacts(
        facts.namespace_kind,
        facts.namespace_id,
        exists=True,
        public=visibility == "public",
        org_owner=facts.org_owner,
        team_levels=facts.team_levels,
    )


@pytest.mark.parametrize(("subject", "visibility", "action"), CASES)
def test_matrix(subject: str, visibility: str, action: Action) -> None:
    identity, facts = _facts(subject, visibility)
    allowed = EXPECTED[subject][0 if visibility == "private" else 1]
    assert may(identity, facts, action, PolicySettings()) is (action in allowed)


@pytest.mark.parametrize(("visibility", "action"), [(v, a) for v in ("private", "public") for a in Action])
def test_anonymous_pull_setting_opens_public_repositories_for_reading_only(
    visibility: str, action: Action
) -> None:
    identity, facts = _facts("anonymous", visibility)
    expected = visibility == "public" and action in READ
    assert may(identity, facts, action, PolicySettings(anonymous_pull=True)) is expected


@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_read_only_token_caps_every_level_at_read(subject: str) -> None:
    identity, facts = _facts(subject, "private")
    restricted = Identity(identity.user_id, identity.name, identity.is_admin, token_id=5, read_only=True)
    full = EXPECTED[subject][0]
    for action in Action:
        assert may(restricted, facts, action, PolicySettings()) is (action in full and action in READ)


def test_highest_grant_wins() -> None:
    facts = RepoFacts(NamespaceKind.ORG, ORG_ID, public=True, team_levels=(Level.READ_ONLY, Level.ADMIN))
    assert access_level(USER, facts, PolicySettings()) is Level.ADMIN


# Creation on push: (subject, namespace facts of a repository that does not exist yet, may create)
CREATE_CASES = [
    ("anonymous", ANONYMOUS, RepoFacts(NamespaceKind.ORG, ORG_ID, exists=False), False),
    (
        "own namespace",
        Identity(user_id=OWNER_ID, name="alice"),
        RepoFacts(NamespaceKind.USER, OWNER_ID, exists=False),
        True,
    ),
    ("someone else's namespace", USER, RepoFacts(NamespaceKind.USER, OWNER_ID, exists=False), False),
    ("organization owner", USER, RepoFacts(NamespaceKind.ORG, ORG_ID, exists=False, org_owner=True), True),
    ("organization outsider", USER, RepoFacts(NamespaceKind.ORG, ORG_ID, exists=False), False),
    (
        "namespace grant read-write",
        USER,
        RepoFacts(NamespaceKind.ORG, ORG_ID, exists=False, team_levels=(Level.READ_WRITE,)),
        True,
    ),
    (
        "namespace grant read-only",
        USER,
        RepoFacts(NamespaceKind.ORG, ORG_ID, exists=False, team_levels=(Level.READ_ONLY,)),
        False,
    ),
    ("top-level name, user", USER, RepoFacts(NamespaceKind.NONE, exists=False), False),
    (
        "top-level name, administrator",
        Identity(1, "admin", is_admin=True),
        RepoFacts(NamespaceKind.NONE, exists=False),
        True,
    ),
    (
        "read-only token in own namespace",
        Identity(user_id=OWNER_ID, name="alice", token_id=3, read_only=True),
        RepoFacts(NamespaceKind.USER, OWNER_ID, exists=False),
        False,
    ),
]


@pytest.mark.parametrize(
    ("label", "identity", "facts", "expected"), CREATE_CASES, ids=[c[0] for c in CREATE_CASES]
)
def test_create_on_push(label: str, identity: Identity, facts: RepoFacts, expected: bool) -> None:
    assert may(identity, facts, Action.PUSH, PolicySettings()) is expected
    assert may_create(identity, facts, PolicySettings(), on_push=False) is expected


@pytest.mark.parametrize(
    ("label", "identity", "facts", "expected"), CREATE_CASES, ids=[c[0] for c in CREATE_CASES]
)
def test_create_on_push_can_be_turned_off(
    label: str, identity: Identity, facts: RepoFacts, expected: bool
) -> None:
    settings = PolicySettings(create_on_push=False)
    assert may(identity, facts, Action.PUSH, settings) is False
    # Explicit creation (the API) is unaffected by the setting.
    assert may_create(identity, facts, settings, on_push=False) is expected


def test_level_labels_round_trip() -> None:
    for level in (Level.READ_ONLY, Level.READ_WRITE, Level.ADMIN):
        assert Level.parse(level.label) is level
    with pytest.raises(ValueError, match="unknown access level"):
        Level.parse("none")
