"""Shared test support: real programs (PostgreSQL, registries, container tools, dockerd) driven from tests.

The pytest fixtures wrapping these live in tests/conftest.py; the classes here are usable on their own.
"""

from .docker import DockerClient, DockerEngine
from .images import BuiltImages, OciImage, build_images
from .postgres import PostgresServer
from .processes import CommandError, Service, free_port, http_status, remove_tree, run, short_tempdir
from .servers import (
    DockyardFactory,
    DockyardServer,
    ReferenceRegistry,
    ReferenceRegistryFactory,
    dockyard_executable,
)
from .tools import ContainerTools

__all__ = [
    "BuiltImages",
    "CommandError",
    "ContainerTools",
    "DockerClient",
    "DockerEngine",
    "DockyardFactory",
    "DockyardServer",
    "OciImage",
    "PostgresServer",
    "ReferenceRegistry",
    "ReferenceRegistryFactory",
    "Service",
    "build_images",
    "dockyard_executable",
    "free_port",
    "http_status",
    "remove_tree",
    "run",
    "short_tempdir",
]
