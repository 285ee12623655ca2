"""Backup while pushes go on, and restore into an empty deployment, on SQLite and PostgreSQL (either way)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from backup_support import archive_tables, database_rows, push_image, settings_on

from dockyard.app import Services, build_services
from dockyard.auth.identity import Identity
from dockyard.auth.tokens import Scope
from dockyard.backup.create import BackupFailed, create_backup
from dockyard.backup.restore import RestoreFailed, restore_backup
from dockyard.config import Settings
from dockyard.db.backup import RUNTIME_TABLES
from support.pushing import push_blob

PG = pytest.mark.postgres
PASSWORD = "a-long-enough-password"


@pytest.fixture
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """The registry backed up, on the backend the test's `source_backend` names (sqlite by default)."""
    backend = getattr(request, "param", "sqlite")
    services = build_services(settings_on(backend, request, tmp_path / "source"))
    try:
        yield services
    finally:
        services.db.close()


def _pushing(
    services: Services, stop: threading.Event, pushed: list[str], errors: list[BaseException]
) -> None:
    count = 0
    try:
        while not stop.is_set():
            push_image(services, f"team/app{count % 3}", f"v{count}", f"image {count}")
            # Moving a tag leaves the old manifest untagged: the archive must still hold what it points to.
            push_image(services, "team/moving", "latest", f"moving {count}")
            pushed.append(f"v{count}")
            count += 1
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def _check_consistent(tables: dict[str, list[dict[str, object]]]) -> None:
    """Every tag's manifest is in the archive, and every blob a manifest needs is in its blob table."""
    manifest_ids = {row["id"] for row in tables["manifests"]}
    blob_digests = {row["digest"] for row in tables["blobs"]}
    linked = {(row["repository_id"], row["digest"]) for row in tables["repository_blobs"]}
    repository_of = {row["id"]: row["repository_id"] for row in tables["manifests"]}
    assert tables["tags"], "the archive was taken before anything was pushed"
    for tag in tables["tags"]:
        assert tag["manifest_id"] in manifest_ids
    for reference in tables["manifest_references"]:
        assert reference["manifest_id"] in manifest_ids
        if reference["kind"] == "blob":
            assert reference["digest"] in blob_digests
            assert (repository_of[reference["manifest_id"]], reference["digest"]) in linked


@pytest.mark.parametrize(
    ("source", "target_backend"),
    [
        ("sqlite", "sqlite"),
        pytest.param("sqlite", "postgres", marks=PG),
        pytest.param("postgres", "sqlite", marks=PG),
        pytest.param("postgres", "postgres", marks=PG),
    ],
    indirect=["source"],
)
def test_backup_while_pushing_then_restore_into_empty(
    source: Services, target_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    admin = source.auth.accounts.create_user(None, "root", PASSWORD, is_admin=True)
    source.auth.keys.rotate()  # two keys: the signing one and a retired one still verifying
    push_image(source, "team/base", "v0", "base")
    stop, pushed, errors = threading.Event(), [], []
    pusher = threading.Thread(target=_pushing, args=(source, stop, pushed, errors))
    pusher.start()
    try:
        for attempt in range(3):
            archive = tmp_path / f"while-pushing-{attempt}.tar"
            create_backup(source.db, source.store, archive, with_blobs=attempt == 2)
            _check_consistent(archive_tables(archive))
    finally:
        stop.set()
        pusher.join(30)
    assert not errors, errors
    assert pushed, "the pushes did not run during the backups"

    final = tmp_path / "final.tar"
    create_backup(source.db, source.store, final, with_blobs=True)
    assert final.stat().st_mode & 0o777 == 0o600
    token, _, _ = source.auth.issuer.issue(_identity(source, admin.id), [])

    target_settings = settings_on(target_backend, request, tmp_path / "target")
    report = restore_backup(final, target_settings)
    assert report.missing_count == 0
    assert report.blobs_written == report.manifest.blobs.count > 0
    assert set(report.skipped_tables) == RUNTIME_TABLES

    target = build_services(target_settings)
    try:
        assert database_rows(target.db, RUNTIME_TABLES) == database_rows(source.db, RUNTIME_TABLES)
        for row in database_rows(target.db)["blobs"]:
            digest = row[0]
            assert b"".join(target.store.read(digest)) == b"".join(source.store.read(digest))
        # The keys and password hashes came back: the old token verifies, the password still works.
        assert target.auth.issuer.verify(token).subject == "root"
        assert target.auth.accounts.authenticate("root", PASSWORD) is not None
        # New ids continue after the restored ones (PostgreSQL's sequences were moved on).
        push_image(target, "after/restore", "v1", "after restore")
        new_token, _, _ = target.auth.issuer.issue(
            _identity(target, admin.id), [Scope("repository", "after/restore", ("pull",))]
        )
        assert source.auth.issuer.verify(new_token).subject == "root"
    finally:
        target.db.close()


def _identity(services: Services, user_id: int) -> Identity:
    found = services.auth.accounts.identity(user_id)
    assert found is not None
    return found


def _occupy_with_user(services: Services) -> None:
    services.auth.accounts.create_user(None, "someone", PASSWORD)


def _occupy_with_image(services: Services) -> None:
    push_image(services, "some/repo", "v1", "occupant")


def _occupy_with_blob(services: Services) -> None:
    # A blob whose repository row went away: only the blob table is non-empty.
    from sqlalchemy import delete

    from dockyard.db.schema import repositories

    push_blob(services, "some/repo", b"a lonely blob")
    with services.db.write() as conn:
        conn.execute(delete(repositories))


@pytest.mark.parametrize("occupy", [_occupy_with_user, _occupy_with_image, _occupy_with_blob])
@pytest.mark.parametrize("target_backend", ["sqlite", pytest.param("postgres", marks=PG)])
def test_restore_refuses_a_target_in_use(
    source: Services, occupy: object, target_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    push_image(source, "team/base", "v0", "base")
    archive = tmp_path / "backup.tar"
    create_backup(source.db, source.store, archive)
    target_settings = settings_on(target_backend, request, tmp_path / "target")
    target = build_services(target_settings)
    try:
        occupy(target)  # type: ignore[operator]
        before = database_rows(target.db)
    finally:
        target.db.close()
    with pytest.raises(RestoreFailed, match="not empty"):
        restore_backup(archive, target_settings)
    again = build_services(target_settings)
    try:
        assert database_rows(again.db) == before
    finally:
        again.db.close()


def test_restore_into_a_started_but_empty_target(source: Services, tmp_path: Path) -> None:
    """A deployment started once without users (its first key made, a heartbeat) counts as empty."""
    push_image(source, "team/base", "v0", "base")
    archive = tmp_path / "backup.tar"
    create_backup(source.db, source.store, archive)
    settings: Settings = source.settings.model_copy(update={"data_dir": tmp_path / "target"})
    build_services(settings).db.close()
    report = restore_backup(archive, settings)
    assert report.rows["tags"] == 1
    restored = build_services(settings)
    try:
        keys = database_rows(restored.db)["signing_keys"]
        assert keys == database_rows(source.db)["signing_keys"]
    finally:
        restored.db.close()


def test_backup_refuses_to_overwrite_without_force(source: Services, tmp_path: Path) -> None:
    archive = tmp_path / "backup.tar"
    archive.write_bytes(b"precious")
    with pytest.raises(BackupFailed, match="--force"):
        create_backup(source.db, source.store, archive)
    assert archive.read_bytes() == b"precious"
    create_backup(source.db, source.store, archive, force=True)
    assert archive.read_bytes() != b"precious"
    assert archive.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    with pytest.raises(BackupFailed, match="does not exist"):
        create_backup(source.db, source.store, tmp_path / "missing" / "backup.tar")
    with pytest.raises(BackupFailed, match="directory"):
        create_backup(source.db, source.store, tmp_path)


def test_restore_warns_about_blobs_missing_from_the_store(source: Services, tmp_path: Path) -> None:
    push_image(source, "team/base", "v0", "base")
    archive = tmp_path / "metadata-only.tar"
    create_backup(source.db, source.store, archive)
    settings = source.settings.model_copy(update={"data_dir": tmp_path / "target"})
    report = restore_backup(archive, settings)
    assert report.manifest.blobs.included is False
    assert report.missing_count == 2  # the config and the layer
    assert len(report.missing_blobs) == 2


@pytest.mark.parametrize("source", ["sqlite", pytest.param("postgres", marks=PG)], indirect=True)
def test_tables_travel_in_batches(
    source: Services, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With batches of 3 rows, tables of many rows go out and come back whole (every batch boundary)."""
    from dockyard.db import backup as q

    monkeypatch.setattr(q, "BATCH_ROWS", 3)
    for number in range(10):
        push_image(source, f"batch/repo{number % 4}", f"t{number}", f"batch {number}")
    archive = tmp_path / "batched.tar"
    create_backup(source.db, source.store, archive, with_blobs=True)
    settings = settings_on("sqlite", request, tmp_path / "target")
    report = restore_backup(archive, settings)
    assert report.rows["blobs"] == 20
    assert report.blobs_written == 20
    target = build_services(settings)
    try:
        assert database_rows(target.db, RUNTIME_TABLES) == database_rows(source.db, RUNTIME_TABLES)
    finally:
        target.db.close()
