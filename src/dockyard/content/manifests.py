"""Manifests and tags: pushing with reference checks, pulling, deleting, listing, referrers."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from dockyard.auth.identity import Identity
from dockyard.content.activity import PullCounter
from dockyard.content.digests import Digest, digest_of
from dockyard.content.errors import (
    ContentError,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestReferenced,
    ManifestTooLarge,
    ManifestUnknown,
    NameUnknown,
)
from dockyard.content.manifest_format import (
    OCI_INDEX,
    ParsedManifest,
    parse_manifest,
    parse_stored_annotations,
)
from dockyard.content.platforms import pushed_platform
from dockyard.db import content as q
from dockyard.db import listing as listing_q
from dockyard.db.engine import Database
from dockyard.events.audit import FAILURE, AuditLog
from dockyard.storage.blobstore import BlobStore

log = logging.getLogger(__name__)

# Called in the transaction recording a pushed manifest: (connection, repository id, repository name,
# digest, media type). Scanning queues its job here, so the job commits with the push or not at all.
PushHook = Callable[[Connection, int, str, str, str], None]


@dataclass(frozen=True)
class Manifest:
    """A stored manifest with its exact bytes."""

    digest: str
    media_type: str
    content: bytes


@dataclass(frozen=True)
class PushResult:
    """What a successful manifest push tells the client."""

    digest: str
    subject: str | None


class _ContentCache:
    """Manifest bytes by digest. Digests are immutable, so entries never go stale; bounded by total bytes."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            content = self._items.get(digest)
            if content is not None:
                self._items.move_to_end(digest)
            return content

    def put(self, digest: str, content: bytes) -> None:
        with self._lock:
            if digest in self._items:
                return
            self._items[digest] = content
            self._bytes += len(content)
            while self._bytes > self._max:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)


def _require_all(kind: str, name: str, wanted: list[str], present: set[str]) -> None:
    """Every referenced blob or child manifest must already be in the repository."""
    for digest in wanted:
        if digest not in present:
            raise ManifestBlobUnknown(
                f"{kind} {digest} is not in repository {name}; push it first", detail={"digest": digest}
            )


def _target(name: str, reference: Digest | str) -> str:
    """How an audit event names a manifest: `name:tag` or `name@digest`."""
    return f"{name}@{reference}" if isinstance(reference, Digest) else f"{name}:{reference}"


def _existing_repository(conn: Connection, name: str) -> int:
    """The repository's id, or NameUnknown."""
    repo_id = q.repository_id(conn, name)
    if repo_id is None:
        raise NameUnknown(f"repository {name} is not known")
    return repo_id


def _refuse_if_in_index(conn: Connection, repo_id: int, digest: str) -> None:
    """Deleting a child of an index would leave the index pointing at nothing."""
    parents = q.parents_of_manifest(conn, repo_id, digest)
    if parents:
        raise ManifestReferenced(
            f"manifest {digest} is part of index {parents[0]}; delete the index first",
            detail={"indexes": parents},
        )


class ManifestService:
    """The rules for manifests: every reference must exist, a tag never points at nothing."""

    def __init__(
        self,
        db: Database,
        max_manifest_bytes: int,
        audit: AuditLog | None = None,
        *,
        audit_pulls: bool = False,
        store: BlobStore | None = None,
    ) -> None:
        self.db = db
        # Where an image's config is read at push for its platform (None: platforms are not recorded).
        self.store = store
        self.max_manifest_bytes = max_manifest_bytes
        self._cache = _ContentCache()
        self.push_hooks: list[PushHook] = []
        # Pulls by clients (not the scanner's reads), flushed to the daily statistics by app.py.
        self.pulls = PullCounter()
        # Pushes and deletes are audited with their outcome, pulls only when `audit_pulls` is set.
        self.audit = audit
        self.audit_pulls = audit_pulls

    def put(
        self,
        name: str,
        reference: Digest | str,
        content: bytes,
        content_type: str,
        actor: Identity | None = None,
    ) -> PushResult:
        """Validate and store a manifest; tag it when the reference is a tag, recording who pushed it.
        The push is audited as `registry.push` with its outcome: in the push's own transaction when it
        succeeds."""
        try:
            return self._put(name, reference, content, content_type, actor)
        except ContentError as exc:
            self._failed("registry.push", actor, name, reference, exc)
            raise

    def _put(
        self, name: str, reference: Digest | str, content: bytes, content_type: str, actor: Identity | None
    ) -> PushResult:
        if len(content) > self.max_manifest_bytes:
            raise ManifestTooLarge(f"manifest is larger than {self.max_manifest_bytes} bytes")
        parsed = parse_manifest(content, content_type)
        algorithm = reference.algorithm if isinstance(reference, Digest) else "sha256"
        digest = digest_of(content, algorithm)
        if isinstance(reference, Digest) and str(reference) != digest:
            raise DigestInvalid(
                f"manifest content has digest {digest}, not {reference}", detail={"digest": digest}
            )
        # Read before the transaction: no storage round trip while rows are locked.
        platform = pushed_platform(self.store, parsed) if self.store is not None else None
        # Idempotent (the same rows and tag however often it runs): a failover that cuts it is retried.
        self.db.write_retrying(
            lambda conn: self._store(conn, name, reference, parsed, digest, content, actor, platform)
        )
        self._cache.put(digest, content)
        return PushResult(digest, parsed.subject.digest if parsed.subject else None)

    def _store(
        self,
        conn: Connection,
        name: str,
        reference: Digest | str,
        parsed: ParsedManifest,
        digest: str,
        content: bytes,
        actor: Identity | None,
        platform: str | None,
    ) -> None:
        """The push's one transaction: the manifest, its references checked and locked, the tag and who
        set it, and its audit record (a retry after a cut COMMIT that had landed may record the push
        twice)."""
        repo_id = q.ensure_repository(conn, name)
        previous: int | None = None
        if isinstance(reference, str):
            # First of the rows this push locks (see q.lock_tag).
            previous = q.lock_tag(conn, repo_id, reference)
        blobs = [b.digest for b in parsed.blobs]
        _require_all("blob", name, blobs, q.lock_blobs_in_repository(conn, repo_id, blobs))
        children = [c.digest for c in parsed.children]
        _require_all("manifest", name, children, q.lock_manifests_in_repository(conn, repo_id, children))
        manifest_id = q.insert_manifest(
            conn,
            repo_id,
            digest=digest,
            media_type=parsed.media_type,
            content=content,
            artifact_type=parsed.artifact_type,
            subject=parsed.subject.digest if parsed.subject else None,
            platform=platform,
            blob_refs=blobs,
            manifest_refs=children,
        )
        if isinstance(reference, str):
            q.set_tag(conn, repo_id, reference, manifest_id, actor.name if actor is not None else None)
        listing_q.record_push(conn, repo_id)
        if self.audit is not None:
            detail: dict[str, str] = {"repository": name, "digest": digest}
            if isinstance(reference, str):
                detail["tag"] = reference
                if previous is not None and previous != manifest_id:
                    # A tag overwrite: which image the tag pointed at before.
                    detail["previous_digest"] = q.manifest_digest(conn, previous) or ""
            self.audit.add(conn, "registry.push", actor=actor, target=_target(name, reference), **detail)
        self._run_hooks(conn, repo_id, name, digest, parsed.media_type)

    def _run_hooks(self, conn: Connection, repo_id: int, name: str, digest: str, media_type: str) -> None:
        for hook in self.push_hooks:
            try:
                # A savepoint: a failing hook undoes its own writes and never fails the push.
                with conn.begin_nested():
                    hook(conn, repo_id, name, digest, media_type)
            except Exception:
                if conn.invalidated:
                    # The connection itself is gone (a failover): the push's whole transaction is lost,
                    # not only the hook's part; it fails, or is run again, as a whole.
                    raise
                log.exception("push hook failed for %s@%s; the push itself succeeded", name, digest)

    def pulled(self, name: str, reference: Digest | str, digest: str, actor: Identity | None) -> None:
        """Audit a pull just served (`registry.pull`, with the digest), when `audit_pulls` is set. Apart
        from `get`, which only reads (and on SQLite runs on the event loop); this writes."""
        if self.audit_pulls and self.audit is not None:
            # Not durable on its own: the next durable write takes it to the disk.
            self.audit.record(
                "registry.pull",
                actor=actor,
                target=_target(name, reference),
                durable=False,
                repository=name,
                digest=digest,
            )

    def get(self, name: str, reference: Digest | str) -> Manifest:
        """A manifest by tag or digest, with its exact bytes."""
        # One statement finds the manifest, whose bytes this process usually holds already (they never
        # change for a digest); else a second one reads them.
        found, row = q.quick_manifest_for_pull(
            self.db, name, str(reference), by_digest=isinstance(reference, Digest)
        )
        if not found:
            raise NameUnknown(f"repository {name} is not known")
        content = None
        if row is not None:
            content = self._cache.get(row.digest)
            if content is None:
                content = q.quick_manifest_content(self.db, row.id)
                if content is not None:
                    self._cache.put(row.digest, content)
        if row is None or content is None:
            # None, or deleted between the two statements.
            raise ManifestUnknown(f"manifest {reference} is not in repository {name}")
        return Manifest(row.digest, row.media_type, content)

    def pull(self, name: str, reference: Digest | str) -> Manifest:
        """A client's pull: `get`, counted for the daily statistics."""
        manifest = self.get(name, reference)
        self.pulls.pulled(name)
        return manifest

    def delete(self, name: str, reference: Digest | str, actor: Identity | None = None) -> None:
        """By digest: the manifest and its tags. By tag: only that tag. Audited as `registry.delete`."""
        try:
            if isinstance(reference, str):
                self._untag(name, reference, actor, "registry.delete")
                return
            with self.db.write() as conn:
                repo_id = _existing_repository(conn, name)
                row = q.manifest_by_digest(conn, repo_id, str(reference))
                if row is None or not q.lock_manifest(conn, row.id):
                    raise ManifestUnknown(f"manifest {reference} is not in repository {name}")
                _refuse_if_in_index(conn, repo_id, row.digest)
                q.delete_manifest(conn, repo_id, row.id)
                self._deleted(conn, "registry.delete", actor, name, reference, row.digest)
        except ContentError as exc:
            self._failed("registry.delete", actor, name, reference, exc)
            raise

    def untag(self, name: str, tag: str, actor: Identity | None = None) -> str:
        """Delete one tag alone, never the manifest or its other tags; returns the digest it pointed at.
        Audited as `tag.delete`."""
        return self._untag(name, tag, actor, "tag.delete")

    def _untag(self, name: str, tag: str, actor: Identity | None, action: str) -> str:
        with self.db.write() as conn:
            repo_id = _existing_repository(conn, name)
            row = q.manifest_by_tag(conn, repo_id, tag)
            if row is None or not q.delete_tag(conn, repo_id, tag):
                raise ManifestUnknown(f"tag {tag} is not in repository {name}")
            self._deleted(conn, action, actor, name, tag, row.digest)
            return row.digest

    def delete_untagged(self, name: str, digest: Digest, actor: Identity | None = None) -> list[str]:
        """Delete a manifest that no tag points at. Returns [] when deleted (audited as `manifest.delete`),
        else (some of) its tags, and deletes nothing. ManifestReferenced while an index of the repository
        lists it."""
        with self.db.write() as conn:
            repo_id = _existing_repository(conn, name)
            row = q.manifest_by_digest(conn, repo_id, str(digest))
            if row is None or not q.lock_manifest(conn, row.id):
                raise ManifestUnknown(f"manifest {digest} is not in repository {name}")
            tagged = listing_q.tags_of_manifest(conn, row.id, limit=6)
            if tagged:
                return tagged
            _refuse_if_in_index(conn, repo_id, row.digest)
            q.delete_manifest(conn, repo_id, row.id)
            self._deleted(conn, "manifest.delete", actor, name, digest, row.digest)
        return []

    def _deleted(
        self,
        conn: Connection,
        action: str,
        actor: Identity | None,
        name: str,
        reference: Digest | str,
        digest: str,
    ) -> None:
        if self.audit is not None:
            self.audit.add(
                conn, action, actor=actor, target=_target(name, reference), repository=name, digest=digest
            )

    def _failed(
        self, action: str, actor: Identity | None, name: str, reference: Digest | str, exc: ContentError
    ) -> None:
        if self.audit is not None:
            self.audit.record(
                action,
                actor=actor,
                target=_target(name, reference),
                outcome=FAILURE,
                repository=name,
                reason=exc.message,
            )

    def tags(self, name: str, last: str | None, limit: int) -> list[str]:
        """A page of a repository's tags."""
        page = q.tags_page(self.db, name, last, limit)
        if page is None:
            raise NameUnknown(f"repository {name} is not known")
        return page

    def catalog(self, last: str | None, limit: int) -> list[str]:
        """A page of repository names."""
        return q.repository_names_page(self.db, last, limit)

    def referrers(self, name: str, subject: Digest, artifact_type: str | None) -> dict[str, Any]:
        """The OCI image index listing manifests whose subject is `subject`."""
        with self.db.read() as conn:
            repo_id = q.repository_id(conn, name)
            rows = q.referrers(conn, repo_id, str(subject), artifact_type) if repo_id is not None else []
        descriptors: list[dict[str, Any]] = []
        for row in rows:
            descriptor: dict[str, Any] = {"mediaType": row.media_type, "digest": row.digest, "size": row.size}
            if row.artifact_type:
                descriptor["artifactType"] = row.artifact_type
            annotations = parse_stored_annotations(row.content)
            if annotations:
                descriptor["annotations"] = annotations
            descriptors.append(descriptor)
        return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
