"""What every /v2/ handler works with: the domain services and the access hook."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from dockyard.content.blobs import BlobService
from dockyard.content.manifests import ManifestService
from dockyard.content.uploads import UploadService
from dockyard.registry.access import Access

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class RegistryContext:
    """Services shared by the handlers."""

    blobs: BlobService
    uploads: UploadService
    manifests: ManifestService
    access: Access


async def call(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking domain call (database, disk) off the event loop."""
    return await run_in_threadpool(func, *args, **kwargs)
