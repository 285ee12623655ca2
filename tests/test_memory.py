"""Memory freed after a burst of 1 MiB chunks goes back to the operating system."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Run in a fresh interpreter: the test process's own heap would blur the figures.
_BURST = textwrap.dedent(
    """
    import asyncio, sys
    from dockyard.memory import large_transfer

    def rss_mib():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    base = rss_mib()
    first = bytes(1 << 20)
    del first  # glibc now serves 1 MiB requests from its heap instead of mmap
    chunks, pins = [], []
    for _ in range(200):
        chunks.append(bytes(bytearray(b"x" * (1 << 20))))
        pins.append(bytearray(64))  # small live objects between the chunks, as in a busy server
    del chunks
    before = rss_mib()

    async def main():
        if sys.argv[1] == "trim":
            with large_transfer():
                with large_transfer():
                    pass
                await asyncio.sleep(1.3)
                print(rss_mib())  # not while a transfer goes on
        await asyncio.sleep(1.3)

    asyncio.run(main())
    print(base, before, rss_mib())
    """
)


def _burst(mode: str) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-c", _BURST, mode], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return [float(figure) for figure in out.split()]


def test_freed_chunks_stay_resident_without_a_trim() -> None:
    base, before, after = _burst("none")
    # 200 MiB were allocated and freed: most of it stays in the process.
    assert before - base > 100
    assert after - base > 100


def test_the_heaps_are_trimmed_once_the_last_transfer_ends() -> None:
    during, base, before, after = _burst("trim")
    assert before - base > 100
    assert during - base > 100  # the inner transfer ended, the outer one had not
    assert after - base < (before - base) / 4
