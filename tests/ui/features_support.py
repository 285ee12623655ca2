"""Shared by the browser tests of the UI's newer features: a live server that flushes pull counts every
second, a team member who pushes with skopeo, and images to push."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ui_support import ADMIN_PASSWORD, live_server, write_image

from support import DockyardServer

PASSWORD = "feature-user-pw"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardServer]:
    """A live registry whose processes add their pull counts to the database every second."""
    yield from live_server(tmp_path_factory, "ui-features", {"DOCKYARD_ACTIVITY_FLUSH_SECONDS": "1"})


def admin_api(server: DockyardServer) -> httpx.Client:
    """The management API as the administrator."""
    return httpx.Client(base_url=f"{server.url}/api/v1", auth=("admin", ADMIN_PASSWORD), timeout=30)


def make_team(server: DockyardServer, repositories: dict[str, str]) -> None:
    """Users `member` (of acme's team `devs`, read-write on each repository) and `outsider`; the
    repositories (name: visibility) in organization acme."""
    with admin_api(server) as api:
        for name in ("member", "outsider"):
            api.post("/users", json={"name": name, "password": PASSWORD}).raise_for_status()
        api.post("/organizations", json={"name": "acme", "owners": ["admin"]}).raise_for_status()
        api.post("/organizations/acme/teams", json={"name": "devs"}).raise_for_status()
        api.put("/organizations/acme/teams/devs/members/member").raise_for_status()
        for repo, visibility in repositories.items():
            api.post("/repositories", json={"name": repo, "visibility": visibility}).raise_for_status()
            api.put(
                f"/organizations/acme/teams/devs/repositories/{repo}", json={"level": "read-write"}
            ).raise_for_status()


def image(tmp: Path, seed: str) -> Path:
    """An OCI layout with one small image whose content (and digest) depends on `seed`."""
    layout = tmp / f"layout-{seed}"
    write_image(layout, "latest", [({"etc/seed": seed.encode()}, f"RUN echo {seed} > /etc/seed")])
    return layout


def skopeo_push(server: DockyardServer, layout: Path, target: str, creds: str) -> None:
    """Push the layout's image with skopeo as `creds` (user:password)."""
    subprocess.run(
        [
            "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds,
            f"oci:{layout}:latest", f"docker://{server.address}/{target}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
