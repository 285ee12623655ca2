"""What every /v2/ handler works with: the domain services and the access hook."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from dockyard.cache.redirect import CacheRedirects
from dockyard.content.blobs import BlobService
from dockyard.content.listing import RepositoryBrowser
from dockyard.content.manifests import ManifestService
from dockyard.content.uploads import UploadService
from dockyard.registry.access import Access

P = ParamSpec("P")
T = TypeVar("T")

# Listing pages (catalog batches, large tag pages) run in a pool of their own: a flood of them queues
# here instead of taking every worker thread, and the interpreter lock, from pulls and pushes.
LISTING_THREADS = 2
_LISTINGS = ThreadPoolExecutor(max_workers=LISTING_THREADS, thread_name_prefix="dockyard-listing")


@dataclass(frozen=True)
class RegistryContext:
    """Services shared by the handlers."""

    blobs: BlobService
    uploads: UploadService
    manifests: ManifestService
    access: Access
    # The listing service: the catalog's visible names.
    listing: RepositoryBrowser
    # Blob pulls of users whose profile names a cache go there (None: no caches on this registry).
    caches: CacheRedirects | None = None

    @property
    def inline_reads(self) -> bool:
        """SQLite reads take microseconds and, in WAL mode, never wait for writers: a thread hop costs
        more than the query, and 40 threads would each hold a pooled connection. Not with remote blob
        storage: reads that touch it (a blob's HEAD, GET) would wait on the network."""
        return self.manifests.db.is_sqlite and self.blobs.store.local


async def call(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking domain call (database, disk) off the event loop."""
    return await run_in_threadpool(func, *args, **kwargs)


async def listing_call(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a listing's bounded database work in the listing pool, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(
        _LISTINGS, functools.partial(func, *args, **kwargs)
    )


async def short_read(inline: bool, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A short read (one or two indexed queries, a stat): inline if `inline` (SQLite), else off the loop."""
    if inline:
        return func(*args, **kwargs)
    return await run_in_threadpool(func, *args, **kwargs)


async def read(ctx: RegistryContext, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`short_read` with the context's database: inline on SQLite, off the loop otherwise."""
    return await short_read(ctx.inline_reads, func, *args, **kwargs)
