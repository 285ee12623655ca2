"""Helpers for the backup tests: settings per backend, images pushed through the services, archives read."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dockyard.app import Services
from dockyard.backup.archive import TableEntry, parse_manifest
from dockyard.config import Settings, load_settings
from dockyard.content.digests import digest_of
from dockyard.content.manifest_format import OCI_MANIFEST
from dockyard.db.engine import Database
from dockyard.db.schema import metadata
from support import PostgresServer
from support.pushing import push_blob

CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"


def settings_on(backend: str, request: pytest.FixtureRequest, data_dir: Path) -> Settings:
    """Settings with the data directory; on PostgreSQL a fresh database of the session's server."""
    if backend == "sqlite":
        return load_settings(data_dir=data_dir)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return load_settings(data_dir=data_dir, database_url=server.create_database())


def push_image(services: Services, name: str, tag: str, label: str) -> str:
    """A config and a layer unique to `label` and a manifest naming them, tagged; the manifest digest."""
    config, layer = json.dumps({"label": label}).encode(), f"layer of {label}".encode() * 50
    push_blob(services, name, config)
    push_blob(services, name, layer)
    content = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": LAYER, "digest": digest_of(layer), "size": len(layer)}],
        }
    ).encode()
    services.manifests.put(name, tag, content, OCI_MANIFEST)
    return digest_of(content)


def archive_members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Every member of a (small) archive with its bytes, in order."""
    with tarfile.open(path) as tar:
        return [(info, tar.extractfile(info).read() if info.isreg() else b"") for info in tar]  # type: ignore[union-attr]


def write_archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    """Write members (info sizes set from the bytes of regular files) as a new archive."""
    import io

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)


def archive_tables(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The rows of every table in an archive, as dicts (binary columns left base64)."""
    import gzip

    members = dict((info.name, data) for info, data in archive_members(path))
    manifest = parse_manifest(members["manifest.json"])
    tables: dict[str, list[dict[str, Any]]] = {}
    for entry in manifest.tables:
        lines = gzip.decompress(members[entry.member]).splitlines()
        tables[entry.name] = [dict(zip(entry.columns, json.loads(line), strict=True)) for line in lines]
    return tables


def manifest_entry(path: Path, table: str) -> TableEntry:
    """One table's entry in an archive's manifest."""
    members = dict((info.name, data) for info, data in archive_members(path))
    return next(entry for entry in parse_manifest(members["manifest.json"]).tables if entry.name == table)


def database_rows(db: Database, skip: frozenset[str] = frozenset()) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary key order, with bytes normalised."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with db.read() as conn:
        for table in metadata.sorted_tables:
            if table.name in skip:
                continue
            result = conn.execute(select(table).order_by(*table.primary_key.columns))
            rows[table.name] = [
                tuple(bytes(value) if isinstance(value, memoryview) else value for value in row)
                for row in result
            ]
    return rows
