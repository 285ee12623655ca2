"""The policy's inputs and answers for repositories: the facts about a repository for one identity, read
from the database, and the one policy function's decision on them. Every service that acts on a
repository asks here; nothing else decides."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from dockyard.auth import policy as p
from dockyard.auth.errors import Forbidden, NotFound
from dockyard.auth.identity import Identity
from dockyard.config import Settings
from dockyard.content.names import namespace_of
from dockyard.db import accounts as q
from dockyard.db import repositories as rq
from dockyard.db.engine import Database


class Permissions:
    """Repository facts for the policy, and its decisions."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.policy_settings = p.PolicySettings(
            anonymous_pull=settings.anonymous_pull, create_on_push=settings.create_on_push
        )

    def repo_facts(self, identity: Identity, name: str) -> p.RepoFacts:
        """What the policy needs about one repository, for one identity."""
        with self.db.read() as conn:
            return self.facts(conn, identity, name, rq.repository_by_name(conn, name))

    def facts_many(self, identity: Identity, names: list[str]) -> dict[str, p.RepoFacts]:
        """Facts for several repositories at once (the catalog): four queries, however many names."""
        if not names:
            return {}
        with self.db.read() as conn:
            rows = rq.repositories_by_names(conn, names)
            wanted = {namespace for name in names if (namespace := namespace_of(name))}
            namespaces = q.accounts_by_names(conn, sorted(wanted)) if wanted else {}
            owned: set[int] = set()
            by_repo: dict[int, list[str]] = {}
            by_org: dict[int, list[str]] = {}
            org_ids = [row.id for row in namespaces.values() if row.kind == q.ORG]
            if identity.user_id is not None and org_ids:
                owned = q.owned_among(conn, identity.user_id, org_ids)
                repo_ids = [row.id for row in rows.values()]
                by_repo, by_org = q.user_team_levels_many(conn, identity.user_id, org_ids, repo_ids)
        facts: dict[str, p.RepoFacts] = {}
        for name in names:
            row, ns_row = rows.get(name), namespaces.get(namespace_of(name) or "")
            owner, levels = False, []
            if identity.user_id is not None and ns_row is not None and ns_row.kind == q.ORG:
                owner = ns_row.id in owned
                levels = [*(by_repo.get(row.id, []) if row else []), *by_org.get(ns_row.id, [])]
            facts[name] = _facts_of(row, ns_row, owner, levels)
        return facts

    def may(self, identity: Identity, name: str, action: p.Action) -> bool:
        """The policy's answer for one repository and action."""
        return p.may(identity, self.repo_facts(identity, name), action, self.policy_settings)

    def facts(
        self, conn: Connection, identity: Identity, name: str, row: rq.RepositoryRow | None
    ) -> p.RepoFacts:
        """`repo_facts` inside the caller's transaction, for the repository row it has read."""
        namespace = namespace_of(name)
        ns_row = q.account_by_name(conn, namespace) if namespace else None
        org_owner = False
        levels: list[str] = []
        if identity.user_id is not None and ns_row is not None and ns_row.kind == q.ORG:
            org_owner = q.is_owner(conn, ns_row.id, identity.user_id)
            levels = q.user_team_levels(conn, identity.user_id, ns_row.id, row.id if row else None)
        return _facts_of(row, ns_row, org_owner, levels)

    def repository_for(
        self, conn: Connection, actor: Identity, name: str, action: p.Action
    ) -> rq.RepositoryRow:
        """The repository, if the actor may do `action` to it: NotFound when they may not even browse it
        (private names do not leak), Forbidden when they may browse but not do this."""
        row = rq.repository_by_name(conn, name)
        facts = self.facts(conn, actor, name, row)
        if row is None or not p.may(actor, facts, p.Action.BROWSE, self.policy_settings):
            # Not found and not visible look the same, so private names do not leak.
            raise NotFound(f"no repository named {name}")
        if not p.may(actor, facts, action, self.policy_settings):
            raise Forbidden(p.refusal(actor, facts, action, self.policy_settings, name))
        return row


def _facts_of(
    row: rq.RepositoryRow | None, ns_row: q.AccountRow | None, org_owner: bool, levels: list[str]
) -> p.RepoFacts:
    kind = p.NamespaceKind.NONE
    if ns_row is not None:
        kind = p.NamespaceKind.USER if ns_row.kind == q.USER else p.NamespaceKind.ORG
    return p.RepoFacts(
        namespace_kind=kind,
        namespace_id=ns_row.id if ns_row is not None else None,
        exists=row is not None,
        public=row is not None and row.visibility == "public",
        org_owner=org_owner,
        team_levels=tuple(p.Level.parse(level) for level in levels),
    )
