"""Give memory freed after large transfers back to the operating system (glibc's malloc_trim).

A burst of concurrent blob transfers allocates many 1 MiB chunks (ours and the server's copies of
them). glibc serves them from its heaps once the first is freed, and keeps the freed pages resident
afterwards: after 16 clients, a worker held tens of MiB it no longer used. Asking for 1 MiB chunks
from mmap instead returns them at once but cost a third of a pull's throughput in page faults, so
the heaps are trimmed instead, once, a second after large transfers stop or at most every second
while they go on.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util

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
_pending: set[asyncio.AbstractEventLoop] = set()


def trim_soon() -> None:
    """Trim the heaps a second from now, unless a trim is already due (call on the event loop)."""
    if _MALLOC_TRIM is None:
        return
    loop = asyncio.get_running_loop()
    if loop in _pending:
        return
    _pending.add(loop)
    loop.call_later(_DELAY_SECONDS, _trim, loop)


def _trim(loop: asyncio.AbstractEventLoop) -> None:
    _pending.discard(loop)
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
