"""`python -m bench.hashing` compares both hashers and reports a figure for each (no figure can fail)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_hashing_comparison_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.hashing", "--mib", "1", "--runs", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert re.fullmatch(r"\s*\d+ KiB updates: hashlib\s+\d+ MB/s, resumable\s+\d+ MB/s", line), line
