"""Repository life: creating (explicitly or on a first push), settings, deleting, and reading repositories
as a caller may see them. Every decision is the policy's (dockyard.auth.permissions); every change is
audited here, in its own transaction; SQL lives in dockyard.db.repositories."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from dockyard.auth import policy as p
from dockyard.auth.errors import Conflict, Forbidden, InvalidInput
from dockyard.auth.identity import Identity
from dockyard.auth.permissions import Permissions
from dockyard.content.errors import NameInvalid
from dockyard.content.names import namespace_of, validate_name
from dockyard.db import browse as bq
from dockyard.db import repositories as q
from dockyard.db import system_settings as sq
from dockyard.events.audit import AuditLog

VISIBILITIES = ("public", "private")


def check_repository_name(name: str, field: str = "name") -> str:
    """A repository name as the OCI Distribution specification defines it."""
    try:
        return validate_name(name)
    except NameInvalid as exc:
        raise InvalidInput(exc.message, field) from exc


@dataclass(frozen=True)
class Repository:
    """A repository with the access facts the API shows."""

    name: str
    namespace: str | None
    visibility: str
    description: str
    created_at: float
    scan_on_push: bool


class RepositoryService:
    """Creating, changing, deleting and reading repositories, as the policy allows."""

    def __init__(self, permissions: Permissions, audit: AuditLog) -> None:
        self.permissions = permissions
        self.db = permissions.db
        self.audit = audit

    def exists(self, name: str) -> bool:
        """Whether a repository of that name has been created."""
        with self.db.read() as conn:
            return q.repository_by_name(conn, name) is not None

    def ensure_on_push(self, identity: Identity, name: str) -> str:
        """Before a push: create the missing repository (private) when allowed.

        Returns "exists", "created" or "denied".
        """
        if self.exists(name):
            return "exists"
        facts = self.permissions.repo_facts(identity, name)
        if facts.exists:
            return "exists"
        if not p.may_create(identity, facts, self.permissions.policy_settings, on_push=True):
            return "denied"
        try:
            with self.db.write() as conn:
                if q.repository_by_name(conn, name) is not None:
                    return "exists"
                q.insert_repository(conn, name, "private", scan_on_push=sq.scan_on_push_default(conn))
                self.audit.add(
                    conn, "repository.create", actor=identity, target=name, visibility="private", via="push"
                )
        except IntegrityError:
            return "exists"  # created concurrently
        return "created"

    def create(
        self,
        actor: Identity,
        name: str,
        visibility: str = "private",
        description: str = "",
        scan_on_push: bool | None = None,
    ) -> Repository:
        """Create a repository explicitly; scan on push as the system default says unless given."""
        check_repository_name(name)
        _check_visibility(visibility)
        _check_description(description)
        settings = self.permissions.policy_settings
        with self.db.write() as conn:
            row = q.repository_by_name(conn, name)
            facts = self.permissions.facts(conn, actor, name, row)
            if row is not None:
                if p.may(actor, facts, p.Action.BROWSE, settings):
                    raise Conflict(f"repository {name} exists", "name")
                raise Forbidden(f"you may not create {name}")
            if actor.read_only:
                raise Forbidden(f"this access token is read-only: it may not create {name}")
            if not p.may_create(actor, facts, settings, on_push=False):
                raise Forbidden(f"you may not create repositories in the namespace of {name}")
            if scan_on_push is None:
                scan_on_push = sq.scan_on_push_default(conn)
            q.insert_repository(conn, name, visibility, description, scan_on_push)
            created = q.repository_by_name(conn, name)
            self.audit.add(conn, "repository.create", actor=actor, target=name, visibility=visibility)
        assert created is not None
        return _repository(created)

    def require(self, actor: Identity, name: str, action: p.Action) -> q.RepositoryRow:
        """The repository, if the actor may do `action` to it: NotFound when they may not even browse it
        (private names do not leak), Forbidden when they may browse but not do this."""
        with self.db.read() as conn:
            return self.permissions.repository_for(conn, actor, name, action)

    def repository(self, actor: Identity, name: str) -> Repository:
        """A repository the actor may browse."""
        return _repository(self.require(actor, name, p.Action.BROWSE))

    def update(
        self,
        actor: Identity,
        name: str,
        *,
        visibility: str | None = None,
        description: str | None = None,
        scan_on_push: bool | None = None,
    ) -> Repository:
        """Change visibility, description and/or scan on push (repository administrators)."""
        values: dict[str, str | bool] = {}
        allowed = self.permissions.repository_for
        with self.db.write() as conn:
            if visibility is not None:
                _check_visibility(visibility)
                allowed(conn, actor, name, p.Action.SET_VISIBILITY)
                values["visibility"] = visibility
            if description is not None:
                _check_description(description)
                allowed(conn, actor, name, p.Action.EDIT)
                values["description"] = description
            if scan_on_push is not None:
                allowed(conn, actor, name, p.Action.EDIT)
                values["scan_on_push"] = scan_on_push
            repo = allowed(conn, actor, name, p.Action.BROWSE)
            if values:
                q.update_repository(conn, repo.id, **values)
            if visibility is not None:
                self.audit.add(conn, "repository.visibility", actor=actor, target=name, visibility=visibility)
            if scan_on_push is not None:
                self.audit.add(
                    conn, "repository.scan_on_push", actor=actor, target=name, scan_on_push=scan_on_push
                )
            updated = q.repository_by_name(conn, name)
        assert updated is not None
        return _repository(updated)

    def set_readme(self, actor: Identity, name: str, readme: str) -> None:
        """Replace the README (repository administrators, as for the description)."""
        if len(readme) > bq.MAX_README:
            raise InvalidInput(f"at most {bq.MAX_README} characters", "readme")
        with self.db.write() as conn:
            row = self.permissions.repository_for(conn, actor, name, p.Action.EDIT)
            bq.set_repository_readme(conn, row.id, readme)
            self.audit.add(conn, "repository.readme", actor=actor, target=name)

    def delete(self, actor: Identity, name: str) -> None:
        """Delete a repository with its tags and manifests; blobs go at the next garbage collection."""
        with self.db.write() as conn:
            repo = self.permissions.repository_for(conn, actor, name, p.Action.DELETE_REPOSITORY)
            q.delete_repository(conn, repo.id)
            self.audit.add(conn, "repository.delete", actor=actor, target=name)


def _check_visibility(visibility: str) -> None:
    if visibility not in VISIBILITIES:
        raise InvalidInput("visibility is public or private", "visibility")


def _check_description(description: str) -> None:
    if len(description) > 10000:
        raise InvalidInput("at most 10000 characters", "description")


def _repository(row: q.RepositoryRow) -> Repository:
    return Repository(
        name=row.name,
        namespace=namespace_of(row.name),
        visibility=row.visibility,
        description=row.description,
        created_at=row.created_at,
        scan_on_push=row.scan_on_push,
    )
