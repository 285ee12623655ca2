"""The policy asked one repository at a time, in Python: the oracle the listings' SQL is checked against."""

from __future__ import annotations

from dockyard.auth import policy as p
from dockyard.auth.identity import Identity
from dockyard.auth.permissions import Permissions
from dockyard.db.repositories import all_repository_names


def browsable(permissions: Permissions, identity: Identity, names: list[str] | None = None) -> list[str]:
    """The names among `names` (default: every repository, by name) the identity may browse, in order."""
    if names is None:
        with permissions.db.read() as conn:
            names = all_repository_names(conn)
    facts = permissions.facts_many(identity, names)
    settings = permissions.policy_settings
    return [name for name in names if p.may(identity, facts[name], p.Action.BROWSE, settings)]
