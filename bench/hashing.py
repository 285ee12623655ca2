"""Hashing speed: hashlib's sha256 against the resumable one uploads use (`python -m bench.hashing`).

CPU time, not wall time, so other load on the machine does not skew the comparison; best of several runs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections.abc import Callable

from dockyard.content.digests import Hasher
from dockyard.content.resumable_hash import ResumableHash


def throughput(make: Callable[[], Hasher], chunk: int, total: int, runs: int) -> float:
    """Best MB/s of CPU time hashing `total` bytes in `chunk`-sized updates."""
    blocks = [os.urandom(chunk) for _ in range(4)]
    count = max(1, total // chunk)
    best = 0.0
    for _ in range(runs):
        hasher = make()
        started = time.process_time()
        for index in range(count):
            hasher.update(blocks[index & 3])
        hasher.hexdigest()
        elapsed = max(time.process_time() - started, 1e-9)
        best = max(best, count * chunk / elapsed / 1e6)
    return best


def compare(total: int, runs: int) -> dict[int, tuple[float, float]]:
    """(hashlib, resumable) MB/s by update size."""
    return {
        chunk: (
            throughput(hashlib.sha256, chunk, total, runs),
            throughput(lambda: ResumableHash("sha256"), chunk, total, runs),
        )
        for chunk in (1 << 16, 1 << 20)
    }


def main() -> None:
    """Print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256, help="MiB hashed per run")
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    for chunk, (plain, resumable) in compare(options.mib << 20, options.runs).items():
        print(f"{chunk >> 10:>5} KiB updates: hashlib {plain:7.0f} MB/s, resumable {resumable:7.0f} MB/s")


if __name__ == "__main__":
    main()
