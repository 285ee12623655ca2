"""Backup a live registry with skopeo pushing, wipe it, restore, serve again: every image pulls back byte for
byte, and the old token and the password still work (keys and password hashes came back). On SQLite, and on
PostgreSQL (restored into a new, empty database)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_support import (
    DOCKYARD,
    ClientEnv,
    DockyardServer,
    Layout,
    LayoutWriter,
    clean_env,
    docker_ref,
    free_port,
    pseudo_random,
    sha256,
    skopeo_copy,
    skopeo_copy_process,
    tar_layer,
)

from support import PostgresServer

pytestmark = pytest.mark.e2e
ADMIN_PASSWORD = "e2e-admin-password"


def _layouts(root: Path) -> dict[str, Layout]:
    layouts: dict[str, Layout] = {}
    single = LayoutWriter(root / "single")
    top = single.image([tar_layer({"data/a.bin": pseudo_random("backup single", 300_000)})], label="single")
    single.tag(top, "v1")
    layouts["single"] = Layout(root / "single", "v1", top)
    multi = LayoutWriter(root / "multi")
    top = multi.index(
        [
            multi.image([tar_layer({"arch": b"amd64\n"})], "amd64"),
            multi.image([tar_layer({"arch": b"arm64\n"})], "arm64"),
        ]
    )
    multi.tag(top, "v1")
    layouts["multi"] = Layout(root / "multi", "v1", top)
    during = LayoutWriter(root / "during")
    top = during.image([tar_layer({"data/d.bin": pseudo_random("during", 2_000_000)})], label="during")
    during.tag(top, "v1")
    layouts["during"] = Layout(root / "during", "v1", top)
    return layouts


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_urls(request: pytest.FixtureRequest) -> Iterator[tuple[str, str] | None]:
    """None on SQLite (the data directory holds it); else the URLs of the first and the restored database."""
    if request.param == "sqlite":
        yield None
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    yield server.create_database(), server.create_database()


def _dockyard(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DOCKYARD), *map(str, args)], env=clean_env(), text=True, capture_output=True, timeout=300
    )


def _token(server: DockyardServer, scope: str) -> str:
    response = httpx.get(
        f"{server.url}/auth/token",
        params={"service": "dockyard", "scope": scope},
        auth=("admin", ADMIN_PASSWORD),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def test_backup_wipe_restore_serve_again(
    client_env: ClientEnv, tmp_path: Path, database_urls: tuple[str, str] | None
) -> None:
    layouts = _layouts(tmp_path / "layouts")
    data_dir, port = tmp_path / "data", free_port()
    first_db = ["--database-url", database_urls[0]] if database_urls else []
    restored_db = ["--database-url", database_urls[1]] if database_urls else []
    server = DockyardServer(
        data_dir, port, tmp_path / "serve0.log", ("admin", ADMIN_PASSWORD), tuple(first_db),
        clean_env(DOCKYARD_ADMIN_PASSWORD=ADMIN_PASSWORD),
    )  # fmt: skip
    archive = tmp_path / "backup.tar"
    try:
        server.start()
        for name in ("single", "multi"):
            skopeo_copy(client_env, server, layouts[name].ref, docker_ref(server, f"e2e/{name}:v1"), "--all")
        old_token = _token(server, "repository:e2e/single:pull")

        # A push in flight while the backup reads: the archive is consistent whether or not it has it.
        pushing = skopeo_copy_process(
            client_env, server, layouts["during"].ref, docker_ref(server, "e2e/during:v1")
        )
        made = _dockyard("backup", "--data-dir", data_dir, *first_db, "--with-blobs", archive)
        assert pushing.wait(180) == 0, pushing.communicate()
        assert made.returncode == 0, made.stderr
        assert archive.stat().st_mode & 0o777 == 0o600
        assert ADMIN_PASSWORD not in made.stdout + made.stderr
        server.stop()

        shutil.rmtree(data_dir)
        restored = _dockyard("restore", "--data-dir", data_dir, *restored_db, archive)
        assert restored.returncode == 0, restored.stderr
        assert "warning" not in restored.stderr

        # Started without DOCKYARD_ADMIN_PASSWORD: the admin's password works only if its hash came back.
        server = DockyardServer(
            data_dir, port, tmp_path / "serve1.log", ("admin", ADMIN_PASSWORD), tuple(restored_db),
            clean_env(),
        )  # fmt: skip
        server.start()
        for name in ("single", "multi"):
            _pull_back_identical(client_env, server, layouts[name], tmp_path / f"pulled-{name}")
        # The token issued before the backup is still good: the signing keys came back.
        response = httpx.get(
            f"{server.url}/v2/e2e/single/manifests/v1",
            headers={"Authorization": f"Bearer {old_token}", "Accept": layouts["single"].top.media_type},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.content == layouts["single"].manifest_bytes()
        assert _token(server, "repository:e2e/single:pull")
        # And the registry takes pushes again.
        skopeo_copy(client_env, server, layouts["single"].ref, docker_ref(server, "e2e/after:v1"))
    finally:
        server.kill()


def _pull_back_identical(client_env: ClientEnv, server: DockyardServer, layout: Layout, dest: Path) -> None:
    """skopeo copies the image (all platforms) back out: same top digest, every blob byte-identical."""
    name = layout.path.name
    skopeo_copy(client_env, server, docker_ref(server, f"e2e/{name}:v1"), f"oci:{dest}:pulled", "--all")
    (entry,) = json.loads((dest / "index.json").read_text())["manifests"]
    assert entry["digest"] == layout.top.digest
    for blob in (dest / "blobs" / "sha256").iterdir():
        data = blob.read_bytes()
        assert sha256(data) == f"sha256:{blob.name}"
        assert data == layout.blob_bytes(f"sha256:{blob.name}")
