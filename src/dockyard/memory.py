"""Give memory freed after large transfers back to the operating system (glibc's malloc_trim).

A burst of concurrent blob transfers allocates many 1 MiB chunks (ours and the server's copies of
them). glibc serves them from its heaps once the first is freed, and keeps the freed pages resident
afterwards: after 16 clients, a worker held tens of MiB it no longer used. Asking for 1 MiB chunks
from mmap instead returns them at once but cost a third of a pull's throughput in page faults, so
the heaps are trimmed instead: once, a second after the last large transfer of the process ends
(trimming while transfers run would hand back pages they are about to use again).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Iterator
from contextlib import contextmanager

_DELAY_SECONDS = 1.0


def _load_trim() -> ctypes._NamedFuncPointer | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _load_trim()
# Per event loop (one per worker process): transfers in progress, and whether a trim is scheduled.
_active: dict[asyncio.AbstractEventLoop, int] = {}
_scheduled: set[asyncio.AbstractEventLoop] = set()


@contextmanager
def large_transfer() -> Iterator[None]:
    """Mark a transfer of many chunks; the heaps are trimmed a second after the last one ends."""
    loop = asyncio.get_running_loop()
    _active[loop] = _active.get(loop, 0) + 1
    try:
        yield
    finally:
        _active[loop] -= 1
        if _active[loop] == 0 and _MALLOC_TRIM is not None and loop not in _scheduled:
            _scheduled.add(loop)
            loop.call_later(_DELAY_SECONDS, _trim, loop)


def _trim(loop: asyncio.AbstractEventLoop) -> None:
    _scheduled.discard(loop)
    if _active.get(loop, 0) == 0 and _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
