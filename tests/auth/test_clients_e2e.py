"""Access control with real clients against a live `dockyard serve`: skopeo, podman and docker.

Users of different levels log in, push and pull; outsiders are refused and see nothing private; anonymous
users pull public repositories when anonymous pull is on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
# The shared e2e helpers (server, clients, layouts) live beside the e2e suite.
from e2e_support import (
    ClientEnv,
    DockerEngine,
    DockyardServer,
    Layout,
    LayoutWriter,
    busybox_bytes,
    clean_env,
    docker,
    free_port,
    podman,
    remove_tree,
    run,
    short_tempdir,
    skopeo,
    skopeo_copy,
    tar_layer,
)

from dockyard.app import build_services
from dockyard.auth.identity import Identity
from dockyard.config import Settings

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo"),
]

ADMIN_PASSWORD = "e2e-auth-admin-password"
PASSWORD = "e2e-user-password"
SYSTEM = Identity(user_id=0, name="e2e", is_admin=True)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardServer]:
    """A live registry with anonymous pull on, users dev, outsider and alice, and the acme organization."""
    base = tmp_path_factory.mktemp("clients")
    server = DockyardServer(
        data_dir=base / "data",
        port=free_port(),
        log_path=base / "serve.log",
        creds=("admin", ADMIN_PASSWORD),
        env=clean_env(DOCKYARD_ADMIN_PASSWORD=ADMIN_PASSWORD, DOCKYARD_ANONYMOUS_PULL="true"),
    )
    server.start()
    try:
        for user in ("dev", "outsider", "alice"):
            _create_user(server, user)
        yield server
    finally:
        server.stop()


def _create_user(server: DockyardServer, name: str) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dockyard"), "admin", "create-user",
         "--data-dir", str(server.data_dir), "--password-stdin", name],
        input=f"{PASSWORD}\n", capture_output=True, text=True, env=clean_env(), timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def _as(server: DockyardServer, user: str | None) -> DockyardServer:
    """The same server seen with another user's credentials (None: anonymous)."""
    if user is None:
        return dataclasses.replace(server, creds=None)
    return dataclasses.replace(server, creds=(user, ADMIN_PASSWORD if user == "admin" else PASSWORD))


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """A one-layer busybox image as an OCI layout."""
    root = tmp_path_factory.mktemp("layout")
    writer = LayoutWriter(root)
    top = writer.image([tar_layer({"bin/busybox": busybox_bytes()})], label="auth-e2e")
    writer.tag(top, "v1")
    return Layout(root, "v1", top)


@pytest.fixture
def cenv() -> Iterator[ClientEnv]:
    """Fresh client state (auth files, storage) for each test: logins must not leak between users."""
    base = short_tempdir("dy-au-")
    try:
        yield ClientEnv(base)
    finally:
        remove_tree(base)


def _catalog(server: DockyardServer, user: str) -> list[str]:
    with _as(server, user).client() as http:
        response = http.get("/v2/_catalog")
    assert response.status_code == 200, response.text
    return list(response.json()["repositories"])


def test_skopeo_login_and_creds(registry: DockyardServer, cenv: ClientEnv, image: Layout) -> None:
    env = cenv.env()
    bad = subprocess.run(
        ["skopeo", "login", "--tls-verify=false", "-u", "dev", "--password-stdin", registry.address],
        input="wrong-password", capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode != 0
    run(["skopeo", "login", "--tls-verify=false", "-u", "dev", "-p", PASSWORD, registry.address], env=env)
    # Logged in: no credentials on the command line. dev pushes to their own namespace.
    target = f"docker://{registry.address}/dev/tool:v1"
    run(["skopeo", "copy", "--dest-tls-verify=false", image.ref, target], env=env)
    run(["skopeo", "logout", registry.address], env=env)
    # --creds works without a login, and the pull gets the same manifest back.
    shown = skopeo(cenv, _as(registry, "dev"), "inspect", "--raw", target)
    assert hashlib.sha256(shown.stdout.encode()).hexdigest() == image.top.digest.split(":")[1]
    assert "dev/tool" in _catalog(registry, "dev")
    assert "dev/tool" not in _catalog(registry, "outsider")


def test_push_to_someone_elses_namespace_is_denied(
    registry: DockyardServer, cenv: ClientEnv, image: Layout
) -> None:
    refused = skopeo_copy(
        cenv, _as(registry, "dev"), image.ref, f"docker://{registry.address}/alice/x:v1", check=False
    )
    assert refused.returncode != 0
    assert "403 (Forbidden)" in refused.stderr or "denied" in refused.stderr.lower(), refused.stderr
    # alice herself may.
    skopeo_copy(cenv, _as(registry, "alice"), image.ref, f"docker://{registry.address}/alice/x:v1")


def test_podman_login_pull_and_push(registry: DockyardServer, cenv: ClientEnv, image: Layout) -> None:
    if shutil.which("podman") is None:
        pytest.skip("needs podman")
    alice = _as(registry, "alice")
    skopeo_copy(cenv, alice, image.ref, f"docker://{registry.address}/alice/pod:v1")
    podman(cenv, alice, "pull", "--tls-verify=false", f"{registry.address}/alice/pod:v1")
    podman(cenv, alice, "tag", f"{registry.address}/alice/pod:v1", f"{registry.address}/alice/pod:v2")
    podman(cenv, alice, "push", "--tls-verify=false", f"{registry.address}/alice/pod:v2")
    with alice.client() as http:
        assert http.get("/v2/alice/pod/tags/list").json()["tags"] == ["v1", "v2"]
    # Logged in as an outsider, podman cannot pull alice's private repository.
    outsider = _as(registry, "outsider")
    denied = podman(
        cenv, outsider, "pull", "--tls-verify=false", f"{registry.address}/alice/pod:v1", check=False
    )
    assert denied.returncode != 0


def test_anonymous_pull_of_a_public_repository(
    registry: DockyardServer, cenv: ClientEnv, image: Layout
) -> None:
    admin = _as(registry, "admin")
    skopeo_copy(cenv, admin, image.ref, f"docker://{registry.address}/admin/public:v1")
    skopeo_copy(cenv, admin, image.ref, f"docker://{registry.address}/admin/secret:v1")
    services = build_services(Settings(data_dir=registry.data_dir))
    assert services.auth is not None
    services.auth.repositories.update(SYSTEM, "admin/public", visibility="public")
    services.db.close()
    anonymous = _as(registry, None)
    pulled = skopeo_copy(
        cenv, anonymous, f"docker://{registry.address}/admin/public:v1", f"oci:{cenv.base}/p:v1"
    )
    assert pulled.returncode == 0
    refused = skopeo(
        cenv, anonymous, "inspect", "--raw", f"docker://{registry.address}/admin/secret:v1", check=False
    )
    assert refused.returncode != 0
    # Anonymous pushes are refused even to a public repository.
    push = skopeo_copy(
        cenv, anonymous, image.ref, f"docker://{registry.address}/admin/public:v2", check=False
    )
    assert push.returncode != 0


@pytest.fixture(scope="module")
def engine() -> Iterator[DockerEngine]:
    """A private dockerd for this module."""
    if shutil.which("dockerd") is None:
        pytest.skip("needs dockerd")
    engine = DockerEngine(short_tempdir("dy-ad-"))
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()
        remove_tree(engine.base)


def test_done_when_team_member_pushes_outsider_sees_nothing(
    registry: DockyardServer, cenv: ClientEnv, image: Layout, engine: DockerEngine
) -> None:
    """An administrator creates an organization, a team and a private repository and grants the team
    read-write; a team member docker-logins and pushes; an outsider can neither pull nor see it."""
    # The administrator works through the management API of the live server.
    with httpx.Client(base_url=f"{registry.url}/api/v1", auth=("admin", ADMIN_PASSWORD)) as api:
        for method, path, body in [
            ("POST", "/organizations", {"name": "acme", "owners": ["admin"]}),
            ("POST", "/organizations/acme/teams", {"name": "devs"}),
            ("PUT", "/organizations/acme/teams/devs/members/dev", None),
            ("POST", "/repositories", {"name": "acme/app", "visibility": "private"}),
            ("PUT", "/organizations/acme/teams/devs/repositories/acme/app", {"level": "read-write"}),
        ]:
            response = api.request(method, path, json=body)
            assert response.status_code in {201, 204}, response.text

    archive = cenv.base / "tmp" / "img.tar"
    run(["skopeo", "copy", image.ref, f"docker-archive:{archive}:auth-e2e/img:v1"], env=cenv.env())
    docker(engine, cenv, None, "load", "-i", str(archive))
    target = f"{registry.address}/acme/app:v1"
    dev = _as(registry, "dev")
    docker(engine, cenv, None, "tag", "auth-e2e/img:v1", target)
    docker(engine, cenv, dev, "push", target)  # logs in as dev first
    docker(engine, cenv, None, "rmi", target)
    docker(engine, cenv, None, "pull", target)
    assert "acme/app" in _catalog(registry, "dev")

    outsider = _as(registry, "outsider")
    docker(engine, cenv, None, "rmi", target)
    denied = docker(engine, cenv, outsider, "pull", target, check=False)
    assert denied.returncode != 0
    assert "acme/app" not in _catalog(registry, "outsider")
    refused = skopeo(cenv, outsider, "inspect", "--raw", f"docker://{target}", check=False)
    assert refused.returncode != 0
    # And the outsider cannot push into it either.
    docker(engine, cenv, None, "tag", "auth-e2e/img:v1", target)
    assert docker(engine, cenv, outsider, "push", target, check=False).returncode != 0
    with httpx.Client(base_url=registry.url, auth=("outsider", PASSWORD)) as http:
        assert http.get("/v2/acme/app/tags/list").status_code == 403
    docker(engine, cenv, None, "logout", registry.address)
