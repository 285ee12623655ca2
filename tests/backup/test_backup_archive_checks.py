"""Restore trusts nothing in an archive: damaged, truncated, altered and hostile archives are refused before
anything is written, and rows that do not fit leave the target empty."""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backup_support import archive_members, database_rows, push_image, write_archive
from sqlalchemy import select

from dockyard.app import build_services
from dockyard.backup.create import create_backup
from dockyard.backup.restore import RestoreFailed, restore_backup
from dockyard.config import Settings, load_settings
from dockyard.db.backup import head_revision
from dockyard.db.schema import metadata

Members = list[tuple[tarfile.TarInfo, bytes]]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good archive with blobs: two images in two repositories."""
    base = tmp_path_factory.mktemp("good")
    services = build_services(load_settings(data_dir=base / "source"))
    try:
        push_image(services, "team/one", "v1", "one")
        push_image(services, "team/two", "v1", "two")
        services.auth.accounts.create_user(None, "root", "a-long-enough-password", is_admin=True)
        path = base / "good.tar"
        create_backup(services.db, services.store, path, with_blobs=True)
    finally:
        services.db.close()
    return path


@pytest.fixture
def target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """An empty deployment; the test's working directory is watched for stray files."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield load_settings(data_dir=tmp_path / "target")
    assert list(work.iterdir()) == [], "restore wrote a file named by the archive"


def _refused(path: Path, settings: Settings, match: str) -> None:
    with pytest.raises(RestoreFailed, match=match):
        restore_backup(path, settings)
    assert not settings.data_dir.exists(), "a refused archive must not touch the target"


def _rewrite(source: Path, destination: Path, change: Callable[[Members], Members]) -> Path:
    write_archive(destination, change(archive_members(source)))
    return destination


def _manifest(members: Members) -> dict[str, object]:
    return json.loads(members[0][1])  # type: ignore[no-any-return]


def _with_manifest(members: Members, document: dict[str, object]) -> Members:
    return [(members[0][0], json.dumps(document).encode()), *members[1:]]


def _reseal(members: Members, name: str, data: bytes) -> Members:
    """Replace a table member and fix its size and sha256 in the manifest (an altered, consistent archive)."""
    document = _manifest(members)
    for entry in document["tables"]:  # type: ignore[attr-defined]
        if entry["member"] == name:
            entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    replaced = [(info, data if info.name == name else old) for info, old in members]
    return _with_manifest(replaced, document)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def _flip_member(name: str) -> Callable[[Members], Members]:
    return lambda members: [
        (info, _flip(data, len(data) // 2) if info.name == name else data) for info, data in members
    ]


def _first(prefix: str, members: Members) -> str:
    return next(info.name for info, _ in members if info.name.startswith(prefix))


@pytest.mark.parametrize(
    ("member", "match"),
    [
        ("tables/accounts.jsonl.gz", "sha256"),
        ("tables/tags.jsonl.gz", "sha256"),
        ("tables/signing_keys.jsonl.gz", "sha256"),
        ("blobs/", "does not match its digest"),
    ],
)
def test_tampered_members_are_refused(
    archive: Path, target: Settings, tmp_path: Path, member: str, match: str
) -> None:
    name = _first(member, archive_members(archive))
    _refused(_rewrite(archive, tmp_path / "tampered.tar", _flip_member(name)), target, match)


@pytest.mark.parametrize("cut", ["after-manifest", "mid-blob", "mid-last-table", "half"])
def test_truncated_archives_are_refused(archive: Path, target: Settings, tmp_path: Path, cut: str) -> None:
    data = archive.read_bytes()
    with tarfile.open(archive) as tar:
        infos = tar.getmembers()
    blob = next(info for info in infos if info.name.startswith("blobs/"))
    at = {
        "after-manifest": infos[1].offset,
        "mid-blob": blob.offset_data + blob.size // 2,
        "mid-last-table": infos[-1].offset_data + infos[-1].size // 2,
        "half": len(data) // 2,
    }[cut]
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(data[:at])
    _refused(truncated, target, "truncated|incomplete|damaged")


def _member(
    name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data)
    return info, data


@pytest.mark.parametrize(
    "hostile",
    [
        _member("../evil.txt"),
        _member("/tmp/dockyard-evil.txt"),
        _member("tables/../../evil.jsonl.gz"),
        _member("blobs/sha256/../../../evil"),
        _member("evil.txt", kind=tarfile.SYMTYPE, link="/etc/passwd"),
        _member("tables/tags.jsonl.gz", kind=tarfile.SYMTYPE, link="/etc/passwd"),
        _member("tables/tags.jsonl.gz", kind=tarfile.LNKTYPE, link="manifest.json"),
        _member("blobs/sha256", kind=tarfile.DIRTYPE),
    ],
    ids=["parent", "absolute", "table-dotdot", "blob-dotdot", "symlink", "table-symlink", "hardlink", "dir"],
)
def test_hostile_members_are_refused(
    archive: Path, target: Settings, tmp_path: Path, hostile: tuple[tarfile.TarInfo, bytes]
) -> None:
    def insert(members: Members) -> Members:
        # Right after the manifest, and again in place of the tags table (where a table is expected).
        kept = [(info, data) for info, data in members if info.name != hostile[0].name]
        return [kept[0], hostile, *kept[1:]]

    _refused(
        _rewrite(archive, tmp_path / "hostile.tar", insert), target, "unexpected member|not a plain file"
    )
    assert not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/dockyard-evil.txt").exists()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: {**d, "format_version": 2}, "format version 2, newer"),
        (lambda d: {**d, "format": "something-else"}, "not a Dockyard backup"),
        (lambda d: {**d, "alembic_revision": "9999"}, "not one this Dockyard knows"),
        (lambda d: {**d, "alembic_revision": "head"}, "not one this Dockyard knows"),
        (lambda d: {**d, "alembic_revision": "0008@head"}, "not one this Dockyard knows"),
        (lambda d: {**d, "tables": "all of them"}, "'tables' is missing"),
        (lambda d: {**d, "dockyard_version": "1.0\x1b[2J"}, "not a short printable text"),
        (lambda d: {**d, "blobs": {**d["blobs"], "count": d["blobs"]["count"] + 1}}, "incomplete"),
        (lambda d: {**d, "blobs": {**d["blobs"], "missing": ["sha256:../../etc"]}}, "bad digest"),
        (lambda d: {**d, "tables": [{**d["tables"][0], "name": "../x"}]}, "bad table name"),
    ],
    ids=[
        "newer-format",
        "not-dockyard",
        "newer-schema",
        "symbolic-head",
        "expression",
        "tables-type",
        "escape-sequence",
        "blob-count",
        "bad-digest",
        "bad-name",
    ],
)
def test_bad_manifests_are_refused(
    archive: Path,
    target: Settings,
    tmp_path: Path,
    change: Callable[[dict[str, object]], dict[str, object]],
    match: str,
) -> None:
    path = _rewrite(archive, tmp_path / "bad.tar", lambda m: _with_manifest(m, change(_manifest(m))))
    _refused(path, target, match)


def test_structural_damage_is_refused(archive: Path, target: Settings, tmp_path: Path) -> None:
    members = archive_members(archive)
    variants: dict[str, tuple[Members, str]] = {
        "no-manifest": (members[1:], "first member is not manifest.json"),
        "manifest-last": ([*members[1:], members[0]], "first member is not manifest.json"),
        "manifest-not-json": ([(members[0][0], b"{not json"), *members[1:]], "not JSON"),
        "table-missing": ([m for m in members if m[0].name != "tables/tags.jsonl.gz"], "incomplete"),
        "blob-missing": ([m for m in members if m[0].name != _first("blobs/", members)], "incomplete"),
        "table-twice": ([*members, members[-1]], "twice"),
        "blob-after-tables": ([m for m in members if not m[0].name.startswith("blobs/")]
                              + [m for m in members if m[0].name.startswith("blobs/")], "unexpected member"),
    }  # fmt: skip
    for name, (changed, match) in variants.items():
        path = tmp_path / f"{name}.tar"
        write_archive(path, changed)
        _refused(path, target, match)


def _rows_of(members: Members, name: str) -> list[list[object]]:
    data = next(data for info, data in members if info.name == name)
    return [json.loads(line) for line in gzip.decompress(data).splitlines()]


def _resealed_rows(members: Members, name: str, rows: list[list[object]]) -> Members:
    body = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
    return _reseal(members, name, gzip.compress(body))


@pytest.mark.parametrize(
    ("table", "alter", "match"),
    [
        ("tables/tags.jsonl.gz", lambda rows: [[*rows[0][:2], 999_999, *rows[0][3:]]], "do not fit"),
        ("tables/tags.jsonl.gz", lambda rows: [rows[0][:2]], "columns"),
        ("tables/manifests.jsonl.gz", lambda rows: [rows[0], rows[0]], "do not fit"),
        (
            "tables/signing_keys.jsonl.gz",
            lambda rows: [[rows[0][0], "%%not base64%%", *rows[0][2:]]],
            "base64",
        ),
        ("tables/accounts.jsonl.gz", lambda rows: [*rows, {"not": "a row"}], "columns"),
        ("tables/tags.jsonl.gz", lambda rows: [[*rows[0][:2], str(rows[0][2]), *rows[0][3:]]], "type"),
        ("tables/accounts.jsonl.gz", lambda rows: [[*row[:5], "yes", *row[6:]] for row in rows], "type"),
        ("tables/blobs.jsonl.gz", lambda rows: [[row[0], True, *row[2:]] for row in rows], "type"),
    ],
    ids=[
        "dangling-tag",
        "short-row",
        "duplicate-key",
        "binary-not-base64",
        "row-not-list",
        "text-for-integer",
        "text-for-boolean",
        "boolean-for-integer",
    ],
)
def test_altered_rows_leave_the_target_empty(
    archive: Path,
    target: Settings,
    tmp_path: Path,
    table: str,
    alter: Callable[[list[list[object]]], list[list[object]]],
    match: str,
) -> None:
    """Rows changed with the manifest fixed to match: refused while loading, and the load rolled back."""
    members = archive_members(archive)
    rows = alter(_rows_of(members, table))
    document = _manifest(members)
    members = _resealed_rows(members, table, rows)
    document = _manifest(members)
    for entry in document["tables"]:  # type: ignore[attr-defined]
        if entry["member"] == table:
            entry["rows"] = len(rows)
    path = tmp_path / "altered.tar"
    write_archive(path, _with_manifest(members, document))
    with pytest.raises(RestoreFailed, match=match):
        restore_backup(path, target)
    if target.data_dir.exists():
        restored = build_services(target)
        try:
            rows_left = database_rows(restored.db)
            assert all(not rows_left[t.name] for t in metadata.sorted_tables if t.name != "signing_keys")
        finally:
            restored.db.close()


def test_a_good_archive_restores(archive: Path, target: Settings) -> None:
    """The control: the same archive, unaltered, restores."""
    report = restore_backup(archive, target)
    assert report.rows["tags"] == 2
    assert report.blobs_written == 4
    restored = build_services(target)
    try:
        with restored.db.read() as conn:
            names = set(conn.execute(select(metadata.tables["repositories"].c.name)).scalars())
        assert names == {"team/one", "team/two"}
    finally:
        restored.db.close()


def _as_revision_0005(members: Members) -> Members:
    """The archive as a Dockyard at schema revision 0005 made it: before the cluster state (no signing_keys,
    leases, replicas; uploads without hash state and writer lease), the UI's statistics (0014: no
    daily_activity, vulnerability_snapshots, system_settings; tags without pushed_by) and the storage
    driver's upload state (0016: uploads without storage_state) and images' platforms (0020: manifests
    without platform)."""
    later_tables = {
        "signing_keys",
        "leases",
        "replicas",
        "daily_activity",
        "vulnerability_snapshots",
        "system_settings",
    }
    document = _manifest(members)
    document["alembic_revision"] = "0005"
    tables = [entry for entry in document["tables"] if entry["name"] not in later_tables]  # type: ignore[attr-defined]
    for entry in tables:
        if entry["name"] == "uploads":
            assert entry["rows"] == 0
            entry["columns"] = [
                c
                for c in entry["columns"]
                if c not in {"hash_state", "writer", "writer_until", "storage_state"}
            ]
            entry["binary_columns"] = []
    document["tables"] = tables
    kept = [(i, d) for i, d in members if i.name not in {f"tables/{t}.jsonl.gz" for t in later_tables}]
    older = _without_column(_with_manifest(kept, document), "tags", "pushed_by")
    return _without_column(older, "manifests", "platform")


def _without_column(members: Members, table: str, column: str) -> Members:
    """The archive with one column of a table left out of its manifest entry and of every row."""
    document = _manifest(members)
    entry = next(e for e in document["tables"] if e["name"] == table)  # type: ignore[attr-defined]
    at = entry["columns"].index(column)
    del entry["columns"][at]
    name = entry["member"]
    data = dict((info.name, d) for info, d in members)[name]
    rows = [json.loads(line) for line in gzip.decompress(data).splitlines()]
    lines = b"".join(
        json.dumps(row[:at] + row[at + 1 :], separators=(",", ":")).encode() + b"\n" for row in rows
    )
    return _reseal(_with_manifest(members, document), name, gzip.compress(lines, mtime=0))


def test_an_archive_of_an_older_schema_restores_and_is_migrated(
    archive: Path, target: Settings, tmp_path: Path
) -> None:
    older = _rewrite(archive, tmp_path / "older.tar", _as_revision_0005)
    report = restore_backup(older, target)
    assert report.rows["tags"] == 2
    restored = build_services(target)
    try:
        with restored.db.read() as conn:
            version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
        assert version == head_revision()
        assert database_rows(restored.db)["signing_keys"], (
            "the first start of the restored registry makes a key"
        )
        assert restored.auth.accounts.authenticate("root", "a-long-enough-password") is not None
    finally:
        restored.db.close()


def test_an_older_archive_is_refused_by_a_newer_empty_target(
    archive: Path, target: Settings, tmp_path: Path
) -> None:
    build_services(target).db.close()  # started once: schema at head, a signing key, nothing in use
    older = _rewrite(archive, tmp_path / "older.tar", _as_revision_0005)
    with pytest.raises(RestoreFailed, match="newer than the archive's"):
        restore_backup(older, target)


def test_binary_columns_must_match_the_schema(archive: Path, target: Settings, tmp_path: Path) -> None:
    def lie(members: Members) -> Members:
        document = _manifest(members)
        for entry in document["tables"]:  # type: ignore[attr-defined]
            if entry["name"] == "signing_keys":
                entry["binary_columns"] = []
            if entry["name"] == "accounts":
                entry["binary_columns"] = ["password_hash"]
        return _with_manifest(members, document)

    with pytest.raises(RestoreFailed, match="binary columns"):
        restore_backup(_rewrite(archive, tmp_path / "lie.tar", lie), target)


def test_an_archive_lacking_a_table_is_refused(archive: Path, target: Settings, tmp_path: Path) -> None:
    def drop_tags(members: Members) -> Members:
        document = _manifest(members)
        document["tables"] = [t for t in document["tables"] if t["name"] != "tags"]  # type: ignore[attr-defined]
        kept = [(info, data) for info, data in members if info.name != "tables/tags.jsonl.gz"]
        return _with_manifest(kept, document)

    with pytest.raises(RestoreFailed, match="lacks tables of its schema revision: tags"):
        restore_backup(_rewrite(archive, tmp_path / "no-tags.tar", drop_tags), target)
