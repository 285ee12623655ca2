"""Give memory freed after large transfers back to the operating system (glibc's malloc_trim).

A burst of concurrent blob transfers allocates many 1 MiB chunks (ours and the server's copies of
them). glibc serves them from its heaps once the first is freed, and keeps the freed pages resident
afterwards: after 16 clients, a worker held tens of MiB it no longer used. Asking for 1 MiB chunks
from mmap instead returns them at once but cost a third of a pull's throughput in page faults, so
the heaps are trimmed instead: once, a second after the last large transfer of the process ends
(trimming while transfers run would hand back pages they are about to use again).

Blocks of 4 MiB and more (a password hash's 19 MiB) are mapped on their own and unmapped when freed
(`tune_allocator`): left to glibc's sliding threshold, one hash freed raised the threshold past its
size, and every later hash stayed in a heap for good.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Iterator
from contextlib import contextmanager

_DELAY_SECONDS = 1.0
# glibc's mallopt parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_FROM = 4 << 20
# glibc's own rule when it slides the threshold: trim the heap top past twice the mmap threshold.
_TRIM_FROM = 2 * _MMAP_FROM


def _load_libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def _function(libc: ctypes.CDLL | None, name: str) -> ctypes._NamedFuncPointer | None:
    try:
        return getattr(libc, name) if libc is not None else None
    except AttributeError:  # not glibc
        return None


_LIBC = _load_libc()
_MALLOC_TRIM = _function(_LIBC, "malloc_trim")
_MALLOPT = _function(_LIBC, "mallopt")


def tune_allocator() -> None:
    """Fix glibc's thresholds for this process and the ones it forks: blocks of 4 MiB and more come
    from mmap and go back when freed; 1 MiB transfer chunks stay in the heaps (see above)."""
    if _MALLOPT is not None:
        _MALLOPT(_M_MMAP_THRESHOLD, _MMAP_FROM)
        _MALLOPT(_M_TRIM_THRESHOLD, _TRIM_FROM)


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
