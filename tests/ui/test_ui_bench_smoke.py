"""`python -m bench.ui_pages` runs to completion on a small data set and reports every page (timings depend
on the machine, so no figure is checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_ui_benchmark_reports_every_page(tmp_path: Path) -> None:
    out = tmp_path / "ui-bench.json"
    small = ["--repositories", "60", "--tags", "300", "--rounds", "2"]
    subprocess.run(
        [sys.executable, "-m", "bench.ui_pages", *small, "--json", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    results = json.loads(out.read_text())
    assert set(results) == {
        "repositories/60",
        "repositories/60/search",
        "tags/300/first",
        "tags/300/middle",
        "tags/300/last",
    }
    assert all(figures["p99_ms"] >= figures["p50_ms"] > 0 for figures in results.values())
