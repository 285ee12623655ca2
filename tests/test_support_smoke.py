"""The shared fixtures work on this machine: each drives its real program once."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from urllib.parse import urlsplit

import psycopg
import pytest
from sqlalchemy import create_engine, text

from support import (
    BuiltImages,
    CommandError,
    DockerClient,
    PostgresServer,
    ReferenceRegistryFactory,
    free_port,
    http_status,
)

Tool = Callable[..., subprocess.CompletedProcess[str]]


def test_free_port_is_bindable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", free_port()))


@pytest.mark.postgres
def test_postgres_creates_fresh_databases(postgres_server: PostgresServer) -> None:
    first, second = postgres_server.create_database(), postgres_server.create_database()
    assert first != second
    assert first.startswith(f"postgresql+psycopg://postgres@127.0.0.1:{postgres_server.port}/")
    engine = create_engine(first)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar_one() == 1
    finally:
        engine.dispose()
    with psycopg.connect(postgres_server.admin_conninfo) as conn:
        names = {row[0] for row in conn.execute("select datname from pg_database")}
    assert {first.rsplit("/", 1)[1], second.rsplit("/", 1)[1]} <= names


def test_images_multiarch_index_has_amd64_and_arm64(images: BuiltImages) -> None:
    children = images.multiarch.manifests()
    assert len(children) == 2
    assert {c["platform"]["architecture"] for c in children} == {"amd64", "arm64"}
    for child in children:
        manifest = json.loads(images.multiarch.blob(child["digest"]))
        config = json.loads(images.multiarch.blob(manifest["config"]["digest"]))
        assert config["architecture"] == child["platform"]["architecture"]
    assert images.single.manifests() == []
    assert len(images.single.document()["layers"]) == 1
    assert len(images.multilayer.document()["layers"]) >= 3


def test_reference_registry_takes_a_skopeo_push(
    reference_registry: str, images: BuiltImages, skopeo: Tool
) -> None:
    assert http_status(f"{reference_registry}/v2/") == 200
    target = f"docker://{urlsplit(reference_registry).netloc}/smoke/single"
    skopeo("copy", "--quiet", images.single.ref, f"{target}:v1")
    tags = json.loads(skopeo("list-tags", target).stdout)
    assert tags["Tags"] == ["v1"]
    digest = skopeo("inspect", "--format", "{{.Digest}}", f"{target}:v1").stdout.strip()
    assert digest == images.single.digest


def test_tool_failures_carry_stderr(skopeo: Tool) -> None:
    with pytest.raises(CommandError) as failure:
        skopeo("inspect", f"docker://127.0.0.1:{free_port()}/nothing/here:v1", "--retry-times", "0")
    assert failure.value.returncode != 0
    assert "connection refused" in str(failure.value)


def test_podman_and_buildah_use_private_storage(
    reference_registry_factory: ReferenceRegistryFactory, images: BuiltImages, podman: Tool, buildah: Tool
) -> None:
    reference_registry = reference_registry_factory({"log": {"level": "info"}})
    image_id = podman("pull", "--quiet", images.multilayer.ref).stdout.strip()
    assert buildah("images", "--quiet", "--no-trunc").stdout.split() == [f"sha256:{image_id}"]
    podman("push", "--quiet", image_id, f"{reference_registry.address}/smoke/podman:v1")
    assert http_status(f"{reference_registry.url}/v2/smoke/podman/tags/list") == 200
    assert (reference_registry.storage_dir / "docker/registry/v2/repositories/smoke/podman").is_dir()


def test_dockerd_loads_a_test_image(docker: DockerClient, images: BuiltImages) -> None:
    docker.load(images, images.single, "smoke/single:v1")
    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert "smoke/single:v1" in listed
