"""`python -m bench --quick` runs to completion and reports every workload for both registries.

Only completion and shape are checked: timings depend on the machine, so no figure can fail a test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

BenchRun = Callable[..., subprocess.CompletedProcess[str]]  # the bench_run fixture (conftest.py)

SIZES = ("1MiB", "10MiB", "100MiB")  # --quick leaves out 1 GiB
ENDPOINTS = (
    "catalog",
    "tag-list",
    "manifest-HEAD-by-tag",
    "manifest-GET-by-tag",
    "manifest-HEAD-by-digest",
    "manifest-GET-by-digest",
)
EXPECTED = (
    {f"requests/{e}/c{c}" for e in ENDPOINTS for c in (1, 8, 32)}
    | {f"push/{kind}/{size}" for kind in ("monolithic", "chunked") for size in SIZES}
    | {f"pull/{size}" for size in SIZES}
    | {"mixed/16-clients", "resources/push-cpu", "resources/pull-cpu", "resources/peak-rss"}
    | {"scale/tags", "scale/catalog"}
)

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None or shutil.which("docker-registry") is None,
    reason="needs wrk and docker-registry (scripts/install-test-deps)",
)


@pytest.mark.timeout(560)
def test_quick_run_reports_every_workload_for_both(tmp_path: Path, bench_run: BenchRun) -> None:
    out = tmp_path / "results.json"
    # Credentials work whether or not the build enforces access control.
    args = ["--quick", "--json", str(out), "--password", "Bench-smoke-pw-42"]
    # The PostgreSQL column has its own test (test_bench_postgres_column.py).
    args += ["--databases", "sqlite"]
    # Under two minutes on a quiet machine; deleting the scale group's files takes minutes more on a busy one.
    run = bench_run("bench", *args, timeout=480)
    assert run.returncode == 0, run.stderr[-4000:]
    results = json.loads(out.read_text())
    assert results["meta"]["mode"] == "quick"
    by_id = {w["id"]: w for w in results["workloads"]}
    assert set(by_id) == EXPECTED
    for workload in by_id.values():
        for side in ("dockyard", "reference"):
            figure = workload[side]
            assert figure is not None and isinstance(figure["value"], float), (workload["id"], side)
            assert figure["value"] >= 0, (workload["id"], side)
    assert "| workload |" in run.stdout
