"""Queries for repositories, blobs, manifests, tags and upload sessions. Each takes an open transaction,
but for the `quick_` ones of the pull path, which take the Database and run one statement outside one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.schema import Table

from dockyard.db.batches import batches
from dockyard.db.engine import Database
from dockyard.db.schema import (
    blobs,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    tags,
    uploads,
)
from dockyard.db.system_settings import scan_on_push_default

BLOB_REF = "blob"
MANIFEST_REF = "manifest"


@dataclass(frozen=True)
class ManifestRow:
    """A stored manifest, without its bytes."""

    id: int
    digest: str
    media_type: str
    size: int
    artifact_type: str | None


@dataclass(frozen=True)
class UploadRow:
    """An upload session."""

    id: str
    repository_id: int
    size: int
    updated_at: float
    hash_state: bytes | None = None
    storage_state: bytes | None = None


def _insert_ignoring_conflict(
    conn: Connection, table: Table, values: dict[str, Any], keys: Sequence[str]
) -> None:
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=list(keys)))


def _locking(conn: Connection, stmt: Any, *, shared: bool) -> Any:
    # SQLite serialises writers with BEGIN IMMEDIATE; PostgreSQL needs explicit row locks.
    if conn.dialect.name == "sqlite":
        return stmt
    return stmt.with_for_update(read=shared)


def _in_byte_order(build: Callable[[Callable[[Any], Any]], Select[Any]]) -> dict[bool, Select[Any]]:
    """A listing statement built once for SQLite (key True) and once for PostgreSQL (False).

    Listings are in lexical (byte) order, as the OCI specification asks and `last` pagination assumes.
    `build` gets how to compare a column that way: as it is on SQLite, whose default BINARY collation is
    byte order already; with `COLLATE "C"` on PostgreSQL, which would otherwise follow the database's
    collation (en-US puts "Z" after "a", skips "-"). Built once: building costs more than running it.
    """
    return {True: build(lambda column: column), False: build(lambda column: column.collate("C"))}


# Repositories


def repository_id(conn: Connection, name: str) -> int | None:
    """The id of a repository, if it exists."""
    return conn.execute(select(repositories.c.id).where(repositories.c.name == name)).scalar_one_or_none()


def ensure_repository(conn: Connection, name: str) -> int:
    """The id of a repository, creating it when missing (scanning on push as the system default says)."""
    found = repository_id(conn, name)
    if found is not None:
        return found
    values = {"name": name, "created_at": time.time(), "scan_on_push": scan_on_push_default(conn)}
    _insert_ignoring_conflict(conn, repositories, values, ["name"])
    found = repository_id(conn, name)
    assert found is not None
    return found


def _names_page(lexical: Callable[[Any], Any]) -> Select[Any]:
    name = lexical(repositories.c.name)
    return (
        select(repositories.c.name).where(name > bindparam("last")).order_by(name).limit(bindparam("limit"))
    )


_NAMES_PAGE = _in_byte_order(_names_page)


def repository_names_page(db: Database, last: str | None, limit: int) -> list[str]:
    """Repository names in lexical order after `last`, at most `limit` (Database.quick_rows)."""
    statement = _NAMES_PAGE[db.is_sqlite]
    return [row.name for row in db.quick_rows(statement, {"last": last or "", "limit": limit})]


# Blobs


def blob_size_in_repository(conn: Connection, repo_id: int, digest: str) -> int | None:
    """The blob's size when it is linked into the repository."""
    stmt = (
        select(blobs.c.size)
        .join(repository_blobs, repository_blobs.c.digest == blobs.c.digest)
        .where(repository_blobs.c.repository_id == repo_id, blobs.c.digest == digest)
    )
    return conn.execute(stmt).scalar_one_or_none()


# A blob HEAD or GET: the repository by name and the blob's link in one statement, built once.
_BLOB_SIZE_BY_NAME = (
    select(blobs.c.size)
    .select_from(
        repositories.join(repository_blobs, repository_blobs.c.repository_id == repositories.c.id).join(
            blobs, blobs.c.digest == repository_blobs.c.digest
        )
    )
    .where(repositories.c.name == bindparam("name"), repository_blobs.c.digest == bindparam("digest"))
)


def quick_blob_size(db: Database, name: str, digest: str) -> int | None:
    """The size of a blob linked into the named repository, None when either is missing; one statement
    outside a transaction (Database.quick_rows)."""
    rows = db.quick_rows(_BLOB_SIZE_BY_NAME, {"name": name, "digest": digest})
    return int(rows[0].size) if rows else None


def lock_digest(conn: Connection, digest: str) -> None:
    """Until the transaction ends, be the only one recording this blob or deleting its bytes.

    A row lock cannot guard a row that does not exist yet (an orphan file's): PostgreSQL takes an advisory
    lock on the digest; SQLite's write transactions are serial already.
    """
    if conn.dialect.name != "sqlite":
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(digest, 0))))


def record_blob(conn: Connection, digest: str, size: int) -> None:
    """Record a verified blob (or refresh it), starting its GC grace period anew."""
    lock_digest(conn, digest)
    now = time.time()
    # One atomic upsert, which leaves the row locked until commit. Insert-if-absent then update could
    # find the row present, then lose it to a collection that deleted it meanwhile.
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    stmt = dialect.insert(blobs).values(digest=digest, size=size, created_at=now, linked_at=now)
    conn.execute(stmt.on_conflict_do_update(index_elements=["digest"], set_={"linked_at": now}))


def link_blob(conn: Connection, repo_id: int, digest: str) -> None:
    """Make a recorded blob readable through a repository."""
    _insert_ignoring_conflict(
        conn,
        repository_blobs,
        {"repository_id": repo_id, "digest": digest, "created_at": time.time()},
        ["repository_id", "digest"],
    )


def unlink_blob(conn: Connection, repo_id: int, digest: str) -> bool:
    """Remove a blob from a repository; the bytes stay until garbage collection."""
    result = conn.execute(
        delete(repository_blobs).where(
            repository_blobs.c.repository_id == repo_id, repository_blobs.c.digest == digest
        )
    )
    return result.rowcount > 0


def lock_blobs_in_repository(conn: Connection, repo_id: int, digests: Iterable[str]) -> set[str]:
    """Of the given digests, those linked into the repository, share-locked until the transaction ends.

    The blobs' own rows are locked first: that is the row a collection locks before deleting, so it either
    waits for this transaction (and then sees the new references) or has already removed the blob. First
    and in digest order, so that neither a collection nor another push can deadlock with this one.
    """
    wanted = set(digests)
    if not wanted:
        return set()
    if conn.dialect.name != "sqlite":
        rows = select(blobs.c.digest).where(blobs.c.digest.in_(wanted)).order_by(blobs.c.digest)
        conn.execute(_locking(conn, rows, shared=True)).all()
    stmt = select(repository_blobs.c.digest).where(
        repository_blobs.c.repository_id == repo_id, repository_blobs.c.digest.in_(wanted)
    )
    return set(conn.execute(_locking(conn, stmt, shared=True)).scalars())


# Manifests and tags

_MANIFEST_COLUMNS = (
    manifests.c.id,
    manifests.c.digest,
    manifests.c.media_type,
    manifests.c.size,
    manifests.c.artifact_type,
)


def _manifest_row(row: Any) -> ManifestRow:
    return ManifestRow(
        id=row.id,
        digest=row.digest,
        media_type=row.media_type,
        size=row.size,
        artifact_type=row.artifact_type,
    )


def manifest_by_digest(conn: Connection, repo_id: int, digest: str) -> ManifestRow | None:
    """A manifest of the repository, by digest."""
    row = conn.execute(
        select(*_MANIFEST_COLUMNS).where(manifests.c.repository_id == repo_id, manifests.c.digest == digest)
    ).first()
    return _manifest_row(row) if row else None


def manifest_by_tag(conn: Connection, repo_id: int, tag: str) -> ManifestRow | None:
    """The manifest a tag points at."""
    row = conn.execute(
        select(*_MANIFEST_COLUMNS)
        .join(tags, tags.c.manifest_id == manifests.c.id)
        .where(tags.c.repository_id == repo_id, tags.c.name == tag)
    ).first()
    return _manifest_row(row) if row else None


# Pulls resolve name and reference in one statement, built once (building costs more than running it).
_PULL_COLUMNS = (repositories.c.id.label("repository_id"), *_MANIFEST_COLUMNS)
_PULL_BY_TAG = (
    select(*_PULL_COLUMNS)
    .select_from(
        repositories.outerjoin(
            tags.join(manifests, tags.c.manifest_id == manifests.c.id),
            and_(tags.c.repository_id == repositories.c.id, tags.c.name == bindparam("reference")),
        )
    )
    .where(repositories.c.name == bindparam("name"))
)
_PULL_BY_DIGEST = (
    select(*_PULL_COLUMNS)
    .select_from(
        repositories.outerjoin(
            manifests,
            and_(
                manifests.c.repository_id == repositories.c.id, manifests.c.digest == bindparam("reference")
            ),
        )
    )
    .where(repositories.c.name == bindparam("name"))
)


def quick_manifest_for_pull(
    db: Database, name: str, reference: str, *, by_digest: bool
) -> tuple[bool, ManifestRow | None]:
    """Whether the repository exists, and the manifest a tag or digest names in it: one statement outside a
    transaction (Database.quick_rows)."""
    rows = db.quick_rows(
        _PULL_BY_DIGEST if by_digest else _PULL_BY_TAG, {"name": name, "reference": reference}
    )
    return _pulled(rows[0] if rows else None)


def _pulled(row: Any) -> tuple[bool, ManifestRow | None]:
    if row is None:
        return False, None
    return True, _manifest_row(row) if row.id is not None else None


def manifest_digest(conn: Connection, manifest_id: int) -> str | None:
    """The digest of a manifest by id (None when it is gone)."""
    found = conn.execute(select(manifests.c.digest).where(manifests.c.id == manifest_id)).scalar_one_or_none()
    return None if found is None else str(found)


_CONTENT_BY_ID = select(manifests.c.content).where(manifests.c.id == bindparam("id"))


def quick_manifest_content(db: Database, manifest_id: int) -> bytes | None:
    """The bytes of a manifest exactly as they were pushed, None when it is gone: one statement outside a
    transaction (Database.quick_rows)."""
    rows = db.quick_rows(_CONTENT_BY_ID, {"id": manifest_id})
    return bytes(rows[0].content) if rows else None


def lock_manifests_in_repository(conn: Connection, repo_id: int, digests: Iterable[str]) -> set[str]:
    """Of the given digests, those stored in the repository, share-locked until the transaction ends."""
    wanted = set(digests)
    if not wanted:
        return set()
    stmt = select(manifests.c.digest).where(
        manifests.c.repository_id == repo_id, manifests.c.digest.in_(wanted)
    )
    return set(conn.execute(_locking(conn, stmt, shared=True)).scalars())


def insert_manifest(
    conn: Connection,
    repo_id: int,
    *,
    digest: str,
    media_type: str,
    content: bytes,
    artifact_type: str | None,
    subject: str | None,
    blob_refs: Iterable[str],
    manifest_refs: Iterable[str],
    platform: str | None = None,
) -> int:
    """Store a manifest and what it references; an identical existing one is kept (given its image's
    platform when it had none: stored before platforms were recorded). Returns its id.

    A new manifest counts as untagged from now until `set_tag` points a tag at it.
    """
    # Locked: a collection of this untagged manifest either finished before (the row is gone, and it is
    # stored anew) or waits for this push, then sees its tag or its new parent. Exclusively, as `set_tag`
    # will update the row: two pushes each holding a share lock would deadlock there.
    found = select(manifests.c.id).where(manifests.c.repository_id == repo_id, manifests.c.digest == digest)
    existing = conn.execute(_locking(conn, found, shared=False)).scalar_one_or_none()
    if existing is not None:
        if platform is not None:
            conn.execute(
                update(manifests)
                .where(manifests.c.id == existing, manifests.c.platform.is_(None))
                .values(platform=platform)
            )
        return int(existing)
    now = time.time()
    manifest_id: int = conn.execute(
        insert(manifests)
        .values(
            repository_id=repo_id,
            digest=digest,
            media_type=media_type,
            content=content,
            size=len(content),
            artifact_type=artifact_type,
            subject=subject,
            platform=platform,
            created_at=now,
            untagged_at=now,
        )
        .returning(manifests.c.id)
    ).scalar_one()
    refs = [{"manifest_id": manifest_id, "kind": BLOB_REF, "digest": d} for d in set(blob_refs)]
    refs += [{"manifest_id": manifest_id, "kind": MANIFEST_REF, "digest": d} for d in set(manifest_refs)]
    if refs:
        conn.execute(insert(manifest_references), refs)
    return manifest_id


def lock_tag(conn: Connection, repo_id: int, tag: str) -> int | None:
    """The manifest a tag points at (None for a new tag), its row locked until the transaction ends.

    A concurrent move of the same tag waits, then reads where this one left it, so every manifest a tag
    leaves is seen by the request that moved it away. A push takes it before locking any manifest row
    (`insert_manifest`): always tag, then manifests, so two pushes cannot wait for each other.
    A tag that does not exist yet has no row to lock: PostgreSQL takes an advisory lock on its name too
    (SQLite's write transactions are serial already).
    """
    if conn.dialect.name != "sqlite":
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"tag {repo_id} {tag}", 0))))
    found = select(tags.c.manifest_id).where(tags.c.repository_id == repo_id, tags.c.name == tag)
    return conn.execute(_locking(conn, found, shared=False)).scalar_one_or_none()


def _mark_untagged_if_last(conn: Connection, manifest_id: int, now: float) -> None:
    """Start a manifest's untagged clock when no tag points at it any more."""
    # Locked first: two requests moving this manifest's last two tags away at once would each still see
    # the other's tag. The second waits here, then its statement sees the first's change.
    conn.execute(_locking(conn, select(manifests.c.id).where(manifests.c.id == manifest_id), shared=False))
    conn.execute(
        update(manifests)
        .where(
            manifests.c.id == manifest_id,
            manifests.c.untagged_at.is_(None),
            ~exists().where(tags.c.manifest_id == manifest_id),
        )
        .values(untagged_at=now)
    )


def set_tag(conn: Connection, repo_id: int, tag: str, manifest_id: int, pushed_by: str | None = None) -> None:
    """Point a tag at a manifest, creating or moving it, and record who did; a manifest left without tags
    starts its untagged clock, and the tagged one stops it."""
    now = time.time()
    conn.execute(update(manifests).where(manifests.c.id == manifest_id).values(untagged_at=None))
    # Created first (a new tag reads back as pointing here already), then read under its row lock.
    _insert_ignoring_conflict(
        conn,
        tags,
        {"repository_id": repo_id, "name": tag, "manifest_id": manifest_id, "updated_at": now},
        ["repository_id", "name"],
    )
    previous = lock_tag(conn, repo_id, tag)
    conn.execute(
        update(tags)
        .where(tags.c.repository_id == repo_id, tags.c.name == tag)
        .values(manifest_id=manifest_id, updated_at=now, pushed_by=pushed_by[:64] if pushed_by else None)
    )
    if previous is not None and previous != manifest_id:
        _mark_untagged_if_last(conn, previous, now)


def delete_tag(conn: Connection, repo_id: int, tag: str) -> bool:
    """Remove one tag; its manifest stays, untagged from now if that was its last tag."""
    previous = lock_tag(conn, repo_id, tag)
    if previous is None:
        return False
    conn.execute(delete(tags).where(tags.c.repository_id == repo_id, tags.c.name == tag))
    _mark_untagged_if_last(conn, previous, time.time())
    return True


def _tags_page(lexical: Callable[[Any], Any]) -> Select[Any]:
    # One statement answers both questions: no row, no repository; one row with no tag, an empty page.
    name = lexical(tags.c.name)
    return (
        select(repositories.c.id, tags.c.name)
        .select_from(
            repositories.outerjoin(
                tags, and_(tags.c.repository_id == repositories.c.id, name > bindparam("last"))
            )
        )
        .where(repositories.c.name == bindparam("name"))
        .order_by(name)
        .limit(bindparam("limit"))
    )


_TAGS_PAGE = _in_byte_order(_tags_page)


def tags_page(db: Database, name: str, last: str | None, limit: int) -> list[str] | None:
    """Tag names in lexical order after `last`, at most `limit`; None when the repository does not exist.

    One statement outside a transaction (Database.quick_rows).
    """
    statement = _TAGS_PAGE[db.is_sqlite]
    rows = db.quick_rows(statement, {"name": name, "last": last or "", "limit": limit})
    if not rows:
        return None
    return [row.name for row in rows if row.name is not None]


def lock_manifest(conn: Connection, manifest_id: int) -> bool:
    """Lock a manifest's row until the transaction ends, before deleting it; False if it is gone.

    An index being pushed share-locks its children: the delete waits for it, then sees it as a parent.
    """
    stmt = select(manifests.c.id).where(manifests.c.id == manifest_id)
    return conn.execute(_locking(conn, stmt, shared=False)).first() is not None


def parents_of_manifest(conn: Connection, repo_id: int, digest: str) -> list[str]:
    """Digests of the repository's indexes that list this manifest as a child."""
    stmt = (
        select(manifests.c.digest)
        .join(manifest_references, manifest_references.c.manifest_id == manifests.c.id)
        .where(
            manifests.c.repository_id == repo_id,
            manifest_references.c.kind == MANIFEST_REF,
            manifest_references.c.digest == digest,
        )
    )
    return list(conn.execute(stmt).scalars())


def delete_manifest(conn: Connection, repo_id: int, manifest_id: int) -> None:
    """Remove a manifest, every tag pointing at it, and its references."""
    conn.execute(delete(tags).where(tags.c.repository_id == repo_id, tags.c.manifest_id == manifest_id))
    conn.execute(delete(manifest_references).where(manifest_references.c.manifest_id == manifest_id))
    conn.execute(delete(manifests).where(manifests.c.id == manifest_id))


@dataclass(frozen=True)
class ReferrerRow:
    """A manifest whose subject is the asked-for digest."""

    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    content: bytes


def referrers(conn: Connection, repo_id: int, subject: str, artifact_type: str | None) -> list[ReferrerRow]:
    """Manifests of the repository that name `subject`, optionally of one artifact type."""
    stmt = (
        select(
            manifests.c.digest,
            manifests.c.media_type,
            manifests.c.size,
            manifests.c.artifact_type,
            manifests.c.content,
        )
        .where(manifests.c.repository_id == repo_id, manifests.c.subject == subject)
        .order_by(manifests.c.created_at, manifests.c.digest)
    )
    if artifact_type is not None:
        stmt = stmt.where(manifests.c.artifact_type == artifact_type)
    return [
        ReferrerRow(r.digest, r.media_type, r.size, r.artifact_type, r.content) for r in conn.execute(stmt)
    ]


# Upload sessions


def create_upload(conn: Connection, upload_id: str, repo_id: int) -> None:
    """Open an upload session."""
    now = time.time()
    conn.execute(
        insert(uploads).values(id=upload_id, repository_id=repo_id, size=0, created_at=now, updated_at=now)
    )


def get_upload(conn: Connection, upload_id: str, repo_id: int) -> UploadRow | None:
    """An upload session of the repository."""
    row = conn.execute(
        select(
            uploads.c.id,
            uploads.c.repository_id,
            uploads.c.size,
            uploads.c.updated_at,
            uploads.c.hash_state,
            uploads.c.storage_state,
        ).where(uploads.c.id == upload_id, uploads.c.repository_id == repo_id)
    ).first()
    if row is None:
        return None
    state = bytes(row.hash_state) if row.hash_state is not None else None
    stored = bytes(row.storage_state) if row.storage_state is not None else None
    return UploadRow(row.id, row.repository_id, row.size, row.updated_at, state, stored)


def take_upload_writer(conn: Connection, upload_id: str, writer: str, now: float, until: float) -> bool:
    """Become the session's one writer until `until`, unless another writer's lease still holds."""
    result = conn.execute(
        update(uploads)
        .where(
            uploads.c.id == upload_id,
            or_(uploads.c.writer.is_(None), uploads.c.writer_until < now),
        )
        .values(writer=writer, writer_until=until)
    )
    return result.rowcount > 0


def renew_upload_writer(conn: Connection, upload_id: str, writer: str, until: float) -> bool:
    """Extend the writer's lease; False if it was lost (expired and taken, or the session is gone)."""
    result = conn.execute(
        update(uploads)
        .where(uploads.c.id == upload_id, uploads.c.writer == writer)
        .values(writer_until=until)
    )
    return result.rowcount > 0


def release_upload_writer(conn: Connection, upload_id: str, writer: str) -> None:
    """Stop being the session's writer."""
    conn.execute(
        update(uploads)
        .where(uploads.c.id == upload_id, uploads.c.writer == writer)
        .values(writer=None, writer_until=None)
    )


def release_writers_of(conn: Connection, replica: str) -> int:
    """Free every session whose writer belongs to `replica` (its previous run died); how many."""
    prefix = f"{replica}/"
    result = conn.execute(
        update(uploads)
        .where(func.substr(uploads.c.writer, 1, len(prefix)) == prefix)
        .values(writer=None, writer_until=None)
    )
    return int(result.rowcount)


def advance_upload(
    conn: Connection,
    upload_id: str,
    expected_size: int,
    new_size: int,
    writer: str,
    hash_state: bytes | None = None,
    storage_state: bytes | None = None,
) -> bool:
    """Record appended bytes, the running hash and the storage driver's state after them, and release
    the writer's lease; only if `writer` still holds it and nobody moved the session meanwhile."""
    result = conn.execute(
        update(uploads)
        .where(uploads.c.id == upload_id, uploads.c.size == expected_size, uploads.c.writer == writer)
        .values(
            size=new_size,
            hash_state=hash_state,
            storage_state=storage_state,
            updated_at=time.time(),
            writer=None,
            writer_until=None,
        )
    )
    return result.rowcount > 0


def delete_upload(conn: Connection, upload_id: str, idle_before: float | None = None) -> bool:
    """Close an upload session; with `idle_before`, only if untouched since then."""
    stmt = delete(uploads).where(uploads.c.id == upload_id)
    if idle_before is not None:
        stmt = stmt.where(uploads.c.updated_at < idle_before)
    return conn.execute(stmt).rowcount > 0


def upload_ids_idle_since(conn: Connection, cutoff: float) -> list[str]:
    """Sessions untouched since `cutoff`."""
    return list(conn.execute(select(uploads.c.id).where(uploads.c.updated_at < cutoff)).scalars())


def upload_idle_since(conn: Connection, upload_id: str, cutoff: float) -> bool:
    """Whether the session is still open and untouched since `cutoff`."""
    stmt = select(exists().where(uploads.c.id == upload_id, uploads.c.updated_at < cutoff))
    return bool(conn.execute(stmt).scalar_one())


def upload_exists(conn: Connection, upload_id: str) -> bool:
    """Whether a session is open, in any repository."""
    return conn.execute(select(exists().where(uploads.c.id == upload_id))).scalar_one()


# Garbage collection

_unreferenced = ~exists().where(
    and_(manifest_references.c.kind == BLOB_REF, manifest_references.c.digest == blobs.c.digest)
)


def unreferenced_blobs(conn: Connection, linked_before: float) -> list[tuple[str, int]]:
    """Blobs no manifest references and nobody linked since `linked_before`."""
    stmt = select(blobs.c.digest, blobs.c.size).where(_unreferenced, blobs.c.linked_at < linked_before)
    return [(row.digest, row.size) for row in conn.execute(stmt)]


def delete_blob_if_unreferenced(conn: Connection, digest: str, linked_before: float) -> bool:
    """Delete the blob's record after locking it and checking again that it is still garbage."""
    locked = conn.execute(
        _locking(conn, select(blobs.c.digest).where(blobs.c.digest == digest), shared=False)
    ).first()
    if locked is None:
        return False
    still_garbage = conn.execute(
        select(blobs.c.digest).where(
            blobs.c.digest == digest, _unreferenced, blobs.c.linked_at < linked_before
        )
    ).first()
    if still_garbage is None:
        return False
    conn.execute(delete(repository_blobs).where(repository_blobs.c.digest == digest))
    conn.execute(delete(blobs).where(blobs.c.digest == digest))
    return True


def unreferenced_blobs_linked_since(conn: Connection, linked_since: float) -> list[tuple[str, int, float]]:
    """Blobs no manifest references that wait out their grace period: (digest, size, linked_at)."""
    stmt = select(blobs.c.digest, blobs.c.size, blobs.c.linked_at).where(
        _unreferenced, blobs.c.linked_at >= linked_since
    )
    return [(row.digest, row.size, row.linked_at) for row in conn.execute(stmt)]


def blobs_referenced_only_by(conn: Connection, manifest_ids: set[int]) -> list[tuple[str, int, float]]:
    """Blobs that no manifest outside `manifest_ids` references: (digest, size, linked_at)."""
    digests: set[str] = set()
    for batch in batches(sorted(manifest_ids)):
        digests.update(
            conn.execute(
                select(manifest_references.c.digest).where(
                    manifest_references.c.kind == BLOB_REF, manifest_references.c.manifest_id.in_(batch)
                )
            ).scalars()
        )
    found: list[tuple[str, int, float]] = []
    for page in batches(sorted(digests)):
        users: dict[str, set[int]] = {}
        refs = select(manifest_references.c.digest, manifest_references.c.manifest_id).where(
            manifest_references.c.kind == BLOB_REF, manifest_references.c.digest.in_(page)
        )
        for row in conn.execute(refs):
            users.setdefault(row.digest, set()).add(row.manifest_id)
        only = [d for d in page if users.get(d, set()) <= manifest_ids]
        rows = select(blobs.c.digest, blobs.c.size, blobs.c.linked_at).where(blobs.c.digest.in_(only))
        found.extend((row.digest, row.size, row.linked_at) for row in conn.execute(rows))
    return found


@dataclass(frozen=True)
class UntaggedRow:
    """A manifest untagged since before a collection's cutoff."""

    id: int
    repository: str
    digest: str


def untagged_manifests(
    conn: Connection, untagged_before: float, after_id: int, limit: int
) -> list[UntaggedRow]:
    """Manifests untagged since before `untagged_before`, by id after `after_id`, at most `limit`."""
    stmt = (
        select(manifests.c.id, repositories.c.name, manifests.c.digest)
        .join(repositories, repositories.c.id == manifests.c.repository_id)
        .where(manifests.c.untagged_at < untagged_before, manifests.c.id > after_id)
        .order_by(manifests.c.id)
        .limit(limit)
    )
    return [UntaggedRow(row.id, row.name, row.digest) for row in conn.execute(stmt)]


_parent = manifests.alias("parent")
_child = manifests.alias("child")


def manifest_keepers(conn: Connection, manifest_ids: Iterable[int]) -> dict[int, set[int]]:
    """For each manifest, the manifests of its repository that keep it: the indexes listing it as a
    child, and the subject it refers to (a signature stays while its image does)."""
    keepers: dict[int, set[int]] = {}
    for batch in batches(manifest_ids):
        parents = (
            select(_child.c.id, _parent.c.id.label("keeper"))
            .join(
                manifest_references,
                and_(
                    manifest_references.c.kind == MANIFEST_REF,
                    manifest_references.c.digest == _child.c.digest,
                ),
            )
            .join(
                _parent,
                and_(
                    _parent.c.id == manifest_references.c.manifest_id,
                    _parent.c.repository_id == _child.c.repository_id,
                ),
            )
            .where(_child.c.id.in_(batch))
        )
        subjects = (
            select(_child.c.id, _parent.c.id.label("keeper"))
            .join(
                _parent,
                and_(_parent.c.repository_id == _child.c.repository_id, _parent.c.digest == _child.c.subject),
            )
            .where(_child.c.id.in_(batch))
        )
        for statement in (parents, subjects):
            for row in conn.execute(statement):
                keepers.setdefault(row.id, set()).add(row.keeper)
    return keepers


def delete_untagged_manifest(conn: Connection, manifest_id: int, untagged_before: float) -> bool:
    """Delete a manifest after locking it and checking again that it is untagged since before the cutoff
    and that nothing keeps it (see `manifest_keepers`); False, and nothing done, otherwise."""
    locked = conn.execute(
        _locking(
            conn,
            select(manifests.c.repository_id, manifests.c.untagged_at).where(manifests.c.id == manifest_id),
            shared=False,
        )
    ).first()
    if locked is None or locked.untagged_at is None or locked.untagged_at >= untagged_before:
        return False
    if conn.execute(select(exists().where(tags.c.manifest_id == manifest_id))).scalar_one():
        return False
    if manifest_keepers(conn, [manifest_id]):
        return False
    delete_manifest(conn, locked.repository_id, manifest_id)
    return True


def known_blob_digests(conn: Connection, digests: Iterable[str]) -> set[str]:
    """Of the given digests, those recorded as blobs."""
    found: set[str] = set()
    for batch in batches(digests):
        found.update(conn.execute(select(blobs.c.digest).where(blobs.c.digest.in_(batch))).scalars())
    return found


def count_rows(conn: Connection, table: Table) -> int:
    """How many rows a table holds (for status reports)."""
    return conn.execute(select(func.count()).select_from(table)).scalar_one()
