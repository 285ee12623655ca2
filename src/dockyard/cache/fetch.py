"""A cache miss: one upstream transfer per blob, streamed to every client that asked while it runs.

The first request for a missing blob starts a transfer that writes the upstream's bytes to a temporary file
while hashing them; that client and any other that asks for the same blob meanwhile read the file as it
grows. Only when the whole blob arrived and its digest matched is the file kept (moved into the store); on a
mismatch or a cut transfer nothing is kept and every reader's response is cut short, so no client can take a
corrupt blob for a whole one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread
import httpx

from dockyard.cache.grants import GRANT_PARAMETER
from dockyard.content.digests import new_hasher
from dockyard.registry.numbers import parse_count
from dockyard.storage.cache_store import CacheStore

CHUNK_SIZE = 1 << 20


class UpstreamRefused(Exception):
    """The upstream answered the fetch with an error status (its own decision, passed on to the client)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.body = body


class TransferFailed(Exception):
    """The upstream transfer broke off or its bytes did not match the digest: nothing was kept."""


@dataclass
class CacheStats:
    """What the node has done since it started."""

    hits: int = 0
    misses: int = 0
    bytes_served: int = 0
    bytes_fetched: int = 0

    def as_dict(self) -> dict[str, int]:
        """For /_ping and `dockyard cache status`."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "bytes_served": self.bytes_served,
            "bytes_fetched": self.bytes_fetched,
        }


@dataclass
class Transfer:
    """One blob on its way from the upstream into the store."""

    digest: str
    temp: Path
    size: int | None = None
    written: int = 0
    done: bool = False
    error: BaseException | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _notify(self) -> None:
        async with self.progress:
            self.progress.notify_all()

    async def read(self, stored: Path) -> AsyncIterator[bytes]:
        """The blob's bytes as they arrive; raises TransferFailed if the transfer fails.

        `stored` is where the blob goes once verified: a reader that starts just as the transfer ends
        finds it there instead of under its temporary name.
        """
        try:
            fd = os.open(self.temp, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if not self.done:
                raise TransferFailed("the upstream transfer failed: nothing was kept") from None
            fd = os.open(stored, os.O_RDONLY | os.O_CLOEXEC)
        try:
            offset = 0
            while True:
                # The last byte waits for the digest check: a client must never receive a whole blob
                # whose digest then fails, since a complete response would look like success.
                ready = self.written if self.done else self.written - 1
                if offset < ready:
                    chunk = os.pread(fd, min(CHUNK_SIZE, ready - offset), offset)
                    offset += len(chunk)
                    yield chunk
                    continue
                if self.error is not None:
                    raise TransferFailed(str(self.error))
                if self.done:
                    return
                async with self.progress:
                    if offset >= self.written - 1 and not self.done and self.error is None:
                        await self.progress.wait()
        finally:
            os.close(fd)


class Fetcher:
    """Starts upstream transfers, one per digest at a time, and keeps what verifies."""

    def __init__(
        self, store: CacheStore, upstream: str, client: httpx.AsyncClient, stats: CacheStats
    ) -> None:
        self.store = store
        self.upstream = upstream.rstrip("/")
        self.client = client
        self.stats = stats
        self._running: dict[str, Transfer] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def blob_url(self, repository: str, digest: str) -> str:
        """The upstream's URL for a blob (a main registry and a cache answer the same path)."""
        return f"{self.upstream}/v2/{repository}/blobs/{digest}"

    async def join(self, repository: str, digest: str, grant: str) -> Transfer:
        """The running transfer of this blob, or a new one; returns once the upstream's answer started.

        Raises UpstreamRefused when the upstream refused (the client gets its status).
        """
        transfer = self._running.get(digest)
        if transfer is None:
            temp = self.store.temp_file()
            # Created before anyone can join, so every reader can open it at once.
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            transfer = Transfer(digest, temp)
            self._running[digest] = transfer
            self.stats.misses += 1
            task = asyncio.create_task(self._run(transfer, repository, grant))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await transfer.started.wait()
        if isinstance(transfer.error, UpstreamRefused):
            raise transfer.error
        return transfer

    async def _run(self, transfer: Transfer, repository: str, grant: str) -> None:
        try:
            await self._fetch(transfer, repository, grant)
        except BaseException as exc:
            transfer.error = exc
            with contextlib.suppress(OSError):
                transfer.temp.unlink()
            if not isinstance(exc, Exception):
                raise
        finally:
            del self._running[transfer.digest]
            transfer.started.set()
            await transfer._notify()

    async def _fetch(self, transfer: Transfer, repository: str, grant: str) -> None:
        url = self.blob_url(repository, transfer.digest)
        async with self.client.stream("GET", url, params={GRANT_PARAMETER: grant}) as response:
            if response.status_code != 200:
                body = await response.aread()
                raise UpstreamRefused(response.status_code, body[:65536])
            transfer.size = parse_count(response.headers.get("content-length", ""))
            transfer.started.set()
            hasher = new_hasher(transfer.digest.partition(":")[0])
            fd = os.open(transfer.temp, os.O_WRONLY | os.O_CLOEXEC)
            try:
                async for chunk in response.aiter_bytes(CHUNK_SIZE):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                    hasher.update(chunk)
                    transfer.written += len(chunk)
                    self.stats.bytes_fetched += len(chunk)
                    await transfer._notify()
                await anyio.to_thread.run_sync(os.fsync, fd)
            finally:
                os.close(fd)
        actual = f"{transfer.digest.partition(':')[0]}:{hasher.hexdigest()}"
        if actual != transfer.digest:
            raise TransferFailed(f"the upstream sent {actual} for {transfer.digest}: not kept")
        if transfer.size is not None and transfer.written != transfer.size:
            raise TransferFailed("the upstream's transfer was cut short: not kept")
        await anyio.to_thread.run_sync(self.store.admit, transfer.temp, transfer.digest)
        transfer.done = True
