"""Browsing repositories, tags and images as people read them (the web UI's questions).

Every method checks access through the account service, which asks the one policy function; a repository
the viewer may not browse is NotFound, so private names never leak. A page of tags costs a fixed number of
queries, however many rows it shows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from dockyard.auth import policy as p
from dockyard.auth.errors import Forbidden, InvalidInput, NotFound
from dockyard.auth.identity import Identity
from dockyard.auth.organizations import OrganizationService
from dockyard.content.activity import DAY_SECONDS, day_of
from dockyard.content.listing import RepositoryBrowser
from dockyard.content.manifest_format import IMAGE_MANIFESTS, INDEXES
from dockyard.content.manifests import ManifestService
from dockyard.content.names import namespace_of
from dockyard.content.platforms import IMAGE_CONFIGS
from dockyard.content.repositories import VISIBILITIES, RepositoryService
from dockyard.db import accounts as aq
from dockyard.db import activity as aq_activity
from dockyard.db import browse as q
from dockyard.db import content as cq
from dockyard.db import listing as listing_q
from dockyard.db import scans as sq
from dockyard.db.audit import AuditRow
from dockyard.db.engine import Database
from dockyard.db.listing import Filters, RepositoryListing
from dockyard.storage.blobstore import BlobStore

# Artifact types that sign their subject (Notary v2 / notation, cosign, sigstore bundles).
SIGNATURE_TYPES = frozenset(
    {
        "application/vnd.cncf.notary.signature",
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
    }
)
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_QUERY = 100
SORTS = ("name", "pushed")


@dataclass(frozen=True)
class RepositoryItem:
    """A repository in the list, with when it was last pushed to."""

    repository: RepositoryListing
    last_push: float | None


@dataclass(frozen=True)
class RepositoryPage:
    """One page of the repositories a viewer may see, with what the filters may offer."""

    items: list[RepositoryItem]
    total: int
    page: int
    pages: int
    namespaces: list[str]
    # More repositories passed the filters than were counted (`total` is the bound).
    more: bool = False


@dataclass(frozen=True)
class Dashboard:
    """Figures over the repositories one viewer may see: storage, largest repositories, and per day (as
    "MM-DD" labels, oldest first) pushes, pulls and findings by severity."""

    repositories: int
    storage_by_namespace: list[tuple[str, int]]
    largest: list[tuple[str, int]]
    pushes_by_day: list[tuple[str, int]]
    pulls_by_day: list[tuple[str, int]]
    vulnerabilities_by_day: list[tuple[str, dict[str, int]]]


@dataclass(frozen=True)
class TagView:
    """A tag as the tags page shows it."""

    name: str
    digest: str
    kind: str
    platforms: list[str]
    size: int | None
    pushed_at: float
    # Who last pointed the tag here (None: not recorded, e.g. pushed before Dockyard recorded it).
    pushed_by: str | None
    # Findings by severity over the tag's images; None when none of them was scanned.
    vulnerabilities: dict[str, int] | None
    referrers: int
    signed: bool


@dataclass(frozen=True)
class TagPage:
    """One page of tags, and the name to continue after (None on the last page)."""

    tags: list[TagView]
    total: int
    next_after: str | None


@dataclass(frozen=True)
class Layer:
    """A layer of an image, with the history line that made it."""

    digest: str
    media_type: str
    size: int
    created_by: str


@dataclass(frozen=True)
class Child:
    """A manifest listed by an index."""

    digest: str
    media_type: str
    size: int
    platform: str


@dataclass(frozen=True)
class Referrer:
    """A manifest whose subject is the image."""

    digest: str
    artifact_type: str
    size: int


@dataclass(frozen=True)
class ImageView:
    """What the image page shows about one manifest."""

    repository: str
    digest: str
    media_type: str
    kind: str
    size: int | None
    tags: list[str]
    created_at: float
    children: list[Child] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    layers: list[Layer] = field(default_factory=list)
    referrers: dict[str, list[Referrer]] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


def _document(content: bytes) -> dict[str, Any]:
    try:
        document = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return {}
    return document if isinstance(document, dict) else {}


def _descriptors(document: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = document.get(key)
    return [d for d in value if isinstance(d, dict)] if isinstance(value, list) else []


def _size(descriptor: dict[str, Any]) -> int:
    size = descriptor.get("size")
    return size if isinstance(size, int) and size >= 0 else 0


def _platform(descriptor: dict[str, Any]) -> str:
    platform = descriptor.get("platform")
    if not isinstance(platform, dict):
        return "unknown"
    parts = [str(platform.get(k)) for k in ("os", "architecture", "variant") if platform.get(k)]
    return "/".join(parts) or "unknown"


def kind_of(media_type: str, artifact_type: str | None, document: dict[str, Any]) -> str:
    """ "index", "image" (a runnable image: its config is an image config) or "artifact"."""
    if media_type in INDEXES:
        return "index"
    config = document.get("config")
    config_type = config.get("mediaType") if isinstance(config, dict) else None
    # The stored artifact type of an OCI image without `artifactType` is its config's media type.
    plain = artifact_type in (None, config_type)
    if media_type in IMAGE_MANIFESTS and plain and config_type in IMAGE_CONFIGS:
        return "image"
    return "artifact"


def image_size(document: dict[str, Any]) -> int:
    """Config plus layers, as stored (compressed)."""
    config = document.get("config")
    return (_size(config) if isinstance(config, dict) else 0) + sum(
        _size(d) for d in _descriptors(document, "layers")
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _config_summary(config: dict[str, Any]) -> dict[str, Any]:
    """What the image page shows of an image configuration (all values are rendered escaped)."""
    run = _mapping(config.get("config"))
    labels = _mapping(run.get("Labels"))
    return {
        "os": str(config.get("os") or ""),
        "architecture": str(config.get("architecture") or ""),
        "variant": str(config.get("variant") or ""),
        "created": str(config.get("created") or ""),
        "author": str(config.get("author") or ""),
        "entrypoint": _strings(run.get("Entrypoint")),
        "cmd": _strings(run.get("Cmd")),
        "env": _strings(run.get("Env")),
        "workdir": str(run.get("WorkingDir") or ""),
        "user": str(run.get("User") or ""),
        "labels": {str(k): str(v) for k, v in labels.items()},
    }


def _layers(document: dict[str, Any], config: dict[str, Any]) -> list[Layer]:
    """Each layer with the history entry that made it (entries marked empty_layer made none)."""
    history = [h for h in config.get("history", []) if isinstance(h, dict)] if config else []
    made = [str(h.get("created_by", "")) for h in history if not h.get("empty_layer")]
    layers = _descriptors(document, "layers")
    return [
        Layer(
            digest=str(d.get("digest", "")),
            media_type=str(d.get("mediaType", "")),
            size=_size(d),
            created_by=made[i] if i < len(made) else "",
        )
        for i, d in enumerate(layers)
    ]


def _label(day: int) -> str:
    return datetime.fromtimestamp(day * DAY_SECONDS, UTC).strftime("%m-%d")


def _add_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    for severity, count in counts.items():
        total[severity] = total.get(severity, 0) + count


class Browser:
    """Read models for the web UI, built from the database and the blob store under the access policy."""

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        repositories: RepositoryService,
        organizations: OrganizationService,
        manifests: ManifestService,
        listing: RepositoryBrowser,
    ) -> None:
        self.db = db
        self.store = store
        self.repo_service = repositories
        self.permissions = repositories.permissions
        self.organizations = organizations
        self.manifests = manifests
        self.listing = listing

    # Repositories

    def repositories(
        self,
        actor: Identity,
        *,
        query: str = "",
        namespace: str | None = None,
        visibility: str | None = None,
        sort: str = "name",
        page: int = 1,
        per_page: int = 25,
    ) -> RepositoryPage:
        """The repositories the actor may browse, searched by substring, filtered, sorted and paged by the
        listing service (in the database: a fixed number of statements, whatever the number of rows).

        Counts and the namespaces offered come from the visible repositories only.
        """
        if len(query) > MAX_QUERY:
            raise InvalidInput(f"search for at most {MAX_QUERY} characters", "q")
        if sort not in SORTS:
            raise InvalidInput("sort by name or pushed", "sort")
        if visibility is not None and visibility not in VISIBILITIES:
            raise InvalidInput("visibility is public or private", "visibility")
        filters = Filters(contains=query.strip() or None, namespace=namespace, visibility=visibility)
        found = self.listing.numbered(actor, filters, by_push=sort == "pushed", page=page, per_page=per_page)
        items = [RepositoryItem(row, row.last_pushed_at or None) for row in found.items]
        return RepositoryPage(items, found.total, found.page, found.pages, found.namespaces, found.more)

    def dashboard(self, actor: Identity, *, days: int = 14, top: int = 10) -> Dashboard:
        """Storage per namespace, the largest repositories, and pushes, pulls and findings by severity per
        day (from the daily statistics), counting only repositories the actor may browse, so no private
        name, size or count leaks into a chart. A fixed number of queries per 500 visible repositories."""
        visible = {r.name for r in self.visible(actor)}
        scope = None if p.may_browse_everything(actor) else visible
        first_day = day_of(time.time()) - days + 1
        with self.db.read() as conn:
            sizes = q.repository_sizes(conn, visible)
            activity = {a.day: a for a in aq_activity.activity_by_day(conn, scope, first_day)}
            snapshots = aq_activity.snapshots_by_day(conn, scope, first_day)
        by_namespace: dict[str, int] = {}
        for name, size in sizes.items():
            namespace = namespace_of(name) or "(top level)"
            by_namespace[namespace] = by_namespace.get(namespace, 0) + size
        span = range(first_day, first_day + days)
        none = aq_activity.DayActivity(0, 0, 0)
        return Dashboard(
            repositories=len(visible),
            storage_by_namespace=sorted(by_namespace.items(), key=lambda kv: (-kv[1], kv[0]))[:top],
            largest=sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:top],
            pushes_by_day=[(_label(day), activity.get(day, none).pushes) for day in span],
            pulls_by_day=[(_label(day), activity.get(day, none).pulls) for day in span],
            vulnerabilities_by_day=[
                (_label(day), snapshots.get(day, dict.fromkeys(aq_activity.SEVERITIES, 0))) for day in span
            ],
        )

    def visible(self, actor: Identity) -> list[RepositoryListing]:
        """Every repository the actor may browse, by name (the dashboard's figures count these only)."""
        return self.listing.visible(actor)

    def creatable_namespaces(self, actor: Identity) -> list[str]:
        """Namespaces where the policy lets the actor create a repository: their own and their
        organizations' (every account's for administrators)."""
        if actor.anonymous or actor.name is None:
            return []
        if p.may_browse_everything(actor):
            with self.db.read() as conn:
                candidates = [row.name for row in aq.list_accounts(conn)]
        else:
            candidates = [actor.name, *self.organizations.organizations_of(actor)]
        # "ns/-" is not a valid repository name, so it never exists: its facts describe the namespace alone.
        probes = {f"{ns}/-": ns for ns in sorted(set(candidates))}
        facts = self.permissions.facts_many(actor, list(probes))
        settings = self.permissions.policy_settings
        return [
            ns for probe, ns in probes.items() if p.may_create(actor, facts[probe], settings, on_push=False)
        ]

    def allowed(self, actor: Identity, name: str) -> frozenset[str]:
        """What the actor may do to the repository, as the policy answers (for showing controls only;
        each action is checked again by the service that performs it)."""
        facts = self.permissions.repo_facts(actor, name)
        actions = p.allowed_actions(actor, facts, list(p.Action), self.permissions.policy_settings)
        return frozenset(action.value for action in actions)

    def readme(self, actor: Identity, name: str) -> str:
        """The repository's README source (Markdown)."""
        row = self.repo_service.require(actor, name, p.Action.BROWSE)
        with self.db.read() as conn:
            return q.repository_readme(conn, row.id)

    def activity(
        self, actor: Identity, name: str, *, limit: int = 50, before_id: int | None = None
    ) -> list[AuditRow]:
        """The repository's audit events, newest first (for those who may manage its access)."""
        self.repo_service.require(actor, name, p.Action.MANAGE_ACCESS)
        with self.db.read() as conn:
            return q.repository_events(conn, name, limit, before_id)

    def job_counts(self, actor: Identity) -> dict[tuple[str, str], int]:
        """Background jobs by kind and state (system administrators, for the health page)."""
        if not p.may_administer(actor):
            raise Forbidden("only system administrators may see the job queue")
        with self.db.read() as conn:
            return q.job_counts(conn)

    # Tags

    def tags(self, actor: Identity, name: str, *, after: str = "", limit: int = 50) -> TagPage:
        """A page of tags with kind, platforms, size, vulnerability counts and referrers: six queries after
        the access check, whatever the page size."""
        row = self.repo_service.require(actor, name, p.Action.BROWSE)
        with self.db.read() as conn:
            total = q.tag_count(conn, row.id)
            rows = listing_q.tags_page(conn, row.id, after, limit + 1, with_content=True)
            more = len(rows) > limit
            rows = rows[:limit]
            documents = {r.digest: _document(r.content or b"") for r in rows}
            children = {
                r.digest: _descriptors(documents[r.digest], "manifests")
                for r in rows
                if r.media_type in INDEXES
            }
            child_digests = {str(c.get("digest")) for listed in children.values() for c in listed}
            child_docs = {
                digest: _document(content)
                for digest, content in q.manifests_by_digests(conn, row.id, child_digests).items()
            }
            images = {r.digest for r in rows if r.media_type in IMAGE_MANIFESTS} | set(child_docs)
            scanned = set(sq.image_scans_of(conn, sorted(images)))
            counts = sq.severity_counts(conn, row.id, sorted(images))
            referrers = q.referrer_counts(conn, row.id, documents)
        views = []
        for r in rows:
            document = documents[r.digest]
            kind = kind_of(r.media_type, r.artifact_type, document)
            own: list[str] = (
                [str(c.get("digest")) for c in children[r.digest]] if r.digest in children else [r.digest]
            )
            if kind == "index":
                platforms = [_platform(c) for c in children[r.digest]]
                size: int | None = sum(image_size(child_docs.get(d, {})) for d in own)
            else:
                platforms = [r.platform] if kind == "image" and r.platform else []
                size = image_size(document)
            totals: dict[str, int] | None = None
            for digest in own:
                if digest in scanned:
                    totals = totals if totals is not None else {}
                    _add_counts(totals, counts.get(digest, {}))
            by_type = referrers.get(r.digest, {})
            views.append(
                TagView(
                    name=r.name,
                    digest=r.digest,
                    kind=kind,
                    platforms=platforms,
                    size=size,
                    pushed_at=r.pushed_at,
                    pushed_by=r.pushed_by,
                    vulnerabilities=totals,
                    referrers=sum(by_type.values()),
                    signed=any(t in SIGNATURE_TYPES for t in by_type),
                )
            )
        return TagPage(views, total, rows[-1].name if more and rows else None)

    # Images

    def image(self, actor: Identity, name: str, digest: str) -> ImageView:
        """One manifest: an index's platforms, or an image's config, layers and history; its referrers."""
        row = self.repo_service.require(actor, name, p.Action.BROWSE)
        with self.db.read() as conn:
            found = q.manifest_with_content(conn, row.id, digest)
            if found is None:
                raise NotFound(f"no manifest {digest} in {name}")
            tags = q.tags_of(conn, row.id, digest, 100)
            referrers = self._referrers(conn, row.id, digest)
            document = _document(found.content)
            listed = _descriptors(document, "manifests")
            child_docs = q.manifests_by_digests(conn, row.id, {str(c.get("digest")) for c in listed})
        kind = kind_of(found.media_type, found.artifact_type, document)
        annotations = document.get("annotations")
        view = ImageView(
            repository=name,
            digest=digest,
            media_type=found.media_type,
            kind=kind,
            size=image_size(document) if kind != "index" else None,
            tags=tags,
            created_at=found.updated_at,
            referrers=referrers,
            annotations={str(k): str(v) for k, v in annotations.items()}
            if isinstance(annotations, dict)
            else {},
        )
        if kind == "index":
            view.children.extend(
                Child(
                    digest=str(c.get("digest", "")),
                    media_type=str(c.get("mediaType", "")),
                    size=image_size(_document(child_docs.get(str(c.get("digest")), b"{}"))),
                    platform=_platform(c),
                )
                for c in listed
            )
            return view
        config = self._config(document) if kind == "image" else {}
        view.config.update(_config_summary(config) if config else {})
        view.layers.extend(_layers(document, config))
        return view

    def _referrers(self, conn: Connection, repo_id: int, digest: str) -> dict[str, list[Referrer]]:
        grouped: dict[str, list[Referrer]] = {}
        for ref in cq.referrers(conn, repo_id, digest, None):
            config = _document(ref.content).get("config")
            kind = ref.artifact_type or (config.get("mediaType") if isinstance(config, dict) else None)
            label = str(kind or "unknown")
            grouped.setdefault(label, []).append(Referrer(ref.digest, label, ref.size))
        return grouped

    def _config(self, document: dict[str, Any]) -> dict[str, Any]:
        config = document.get("config")
        digest = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(digest, str) or _size(config or {}) > MAX_CONFIG_BYTES:
            return {}
        try:
            data = b"".join(_bounded(self.store.read(digest), MAX_CONFIG_BYTES))
        except (FileNotFoundError, OSError):
            return {}
        return _document(data)


def _bounded(chunks: Iterable[bytes], limit: int) -> Iterable[bytes]:
    read = 0
    for chunk in chunks:
        read += len(chunk)
        if read > limit:
            return
        yield chunk
