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


_BIG_BLOCKS = textwrap.dedent(
    """
    import sys
    from dockyard.memory import tune_allocator

    def rss_mib():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    if sys.argv[1] == "tuned":
        tune_allocator()
    base = rss_mib()
    other = bytearray(24 << 20)  # some larger temporary freed earlier: glibc's threshold slides past 19 MiB
    del other
    for _ in range(3):  # then a password hash's worth of memory, three logins in a row
        block = bytearray(b"x" * (19 << 20))
        del block
    print(base, rss_mib())
    """
)


def _big_blocks(mode: str) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _BIG_BLOCKS, mode], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    base, after = (float(figure) for figure in out.split())
    return base, after


def test_big_blocks_stay_resident_with_glibcs_sliding_threshold() -> None:
    base, after = _big_blocks("default")
    assert after - base > 15


def test_tuned_big_blocks_go_back_when_freed() -> None:
    base, after = _big_blocks("tuned")
    assert after - base < 5
