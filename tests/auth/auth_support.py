"""Helpers and fixtures for access-control tests.

A cheap password hasher, an app on a temporary data directory, and a populated world of users, an
organization, teams and repositories.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from dockyard.app import AuthServices, create_app
from dockyard.auth import passwords
from dockyard.auth.identity import Identity
from dockyard.config import Settings
from dockyard.content.manifest_format import OCI_MANIFEST

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
ADMIN_PASSWORD = "admin-password-1"
PASSWORD = "user-password-1"
SYSTEM = Identity(user_id=0, name="test", is_admin=True)


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    # argon2id with the production parameters costs ~0.1 s per check; the tests check thousands.
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DOCKYARD_"):
            monkeypatch.delenv(name)


@dataclass
class World:
    """A running app (TestClient) and its services."""

    client: TestClient
    auth: AuthServices
    settings: Settings

    def token(self, user: str | None, *scopes: str, password: str = PASSWORD) -> str:
        """A registry token from GET /auth/token."""
        auth = (user, ADMIN_PASSWORD if user == "admin" else password) if user else None
        response = self.client.get(
            "/auth/token", params={"service": self.settings.service, "scope": list(scopes)}, auth=auth
        )
        assert response.status_code == 200, response.text
        return str(response.json()["token"])


AppFactory = Callable[..., World]


def open_world(data: Path, populate: bool = True, **settings: Any) -> World:
    """An app on `data` with `admin` bootstrapped with ADMIN_PASSWORD; close its client when done."""
    config = Settings(data_dir=data, admin_password=ADMIN_PASSWORD, **settings)
    app = create_app(config)
    client = TestClient(app)
    client.__enter__()
    world = World(client, app.state.auth, config)
    if populate:
        populate_world(world.auth)
    return world


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[AppFactory]:
    """Factory: an app on a fresh data directory (see open_world)."""
    worlds: list[World] = []

    def make(populate: bool = True, **settings: Any) -> World:
        world = open_world(tmp_path / f"data{len(worlds)}", populate, **settings)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.client.__exit__(None, None, None)


@pytest.fixture
def world(make_world: AppFactory) -> World:
    """The default world (anonymous pull off, creation on push on)."""
    return make_world()


def populate_world(auth: AuthServices) -> None:
    """Users of every level, organization `acme` with teams, and repositories public and private.

    outsider: nobody in particular; ro/rw/adm: members of acme's teams of those levels on acme/*;
    owner: owner of acme; alice: a user with her own namespace; admin: system administrator.
    """
    accounts = auth.accounts
    for name in ("outsider", "ro", "rw", "adm", "owner", "alice"):
        accounts.create_user(None, name, PASSWORD)
    auth.organizations.create_organization(SYSTEM, "acme", ["owner"])
    for repo, visibility in (
        ("acme/private", "private"),
        ("acme/public", "public"),
        ("alice/private", "private"),
        ("alice/public", "public"),
    ):
        auth.repositories.create(SYSTEM, repo, visibility)
    for team, level in (("readers", "read-only"), ("writers", "read-write"), ("admins", "admin")):
        auth.organizations.create_team(SYSTEM, "acme", team)
        member = {"readers": "ro", "writers": "rw", "admins": "adm"}[team]
        auth.organizations.set_member(SYSTEM, "acme", team, member, True)
        for repo in ("acme/private", "acme/public"):
            auth.grants.set_repository_grant(SYSTEM, repo, team, level)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_bytes(world: World, repo: str, user: str, seed: str, *, push_layer: bool = True) -> bytes:
    """Push a config (and, unless `push_layer` is False, a layer) to `repo` as `user` over /v2/; return a
    manifest referencing them (not pushed)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = f"layer-{seed}".encode() * 10
    for blob in (config, layer) if push_layer else (config,):
        response = world.client.post(
            f"/v2/{repo}/blobs/uploads/",
            params={"digest": _sha256(blob)},
            content=blob,
            headers={"Content-Type": "application/octet-stream"},
            auth=(user, PASSWORD),
        )
        assert response.status_code == 201, response.text
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": _sha256(layer), "size": len(layer)}],
        }
    ).encode()


def push_image(world: World, repo: str, tag: str, user: str, seed: str = "a") -> str:
    """Push a small image to `repo:tag` as `user` over /v2/; returns its manifest's digest."""
    manifest = image_bytes(world, repo, user, seed)
    response = world.client.put(
        f"/v2/{repo}/manifests/{tag}",
        content=manifest,
        headers={"Content-Type": OCI_MANIFEST},
        auth=(user, PASSWORD),
    )
    assert response.status_code == 201, response.text
    return _sha256(manifest)
