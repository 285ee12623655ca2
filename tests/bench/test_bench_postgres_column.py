"""`python -m bench --only database` adds Dockyard on PostgreSQL as a column beside SQLite and the reference.

The bench starts its own PostgreSQL and removes it at the end. Only shape and sanity are checked: timings
depend on the machine, so no figure can fail a test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from support.postgres import postgres_bindir

BenchRun = Callable[..., subprocess.CompletedProcess[str]]  # the bench_run fixture (conftest.py)
# --quick: manifest GET at 1 and 8 connections, pushes of the sizes below its large one (100 MiB).
EXPECTED = {
    f"requests/manifest-GET-by-{by}/c{connections}" for by in ("tag", "digest") for connections in (1, 8)
} | {f"push/{kind}/{size}" for kind in ("monolithic", "chunked") for size in ("1MiB", "10MiB")}
SIDES = ("dockyard", "postgres", "reference")


def _postgres_installed() -> bool:
    try:
        postgres_bindir()
    except RuntimeError:
        return False
    return True


pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        shutil.which("wrk") is None or shutil.which("docker-registry") is None or not _postgres_installed(),
        reason="needs wrk, docker-registry and postgresql (scripts/install-test-deps)",
    ),
]


@pytest.mark.timeout(330)
def test_database_run_reports_the_postgres_column(tmp_path: Path, bench_run: BenchRun) -> None:
    out = tmp_path / "results.json"
    args = ["--quick", "--only", "database", "--databases", "sqlite,postgres", "--json", str(out)]
    run = bench_run("bench", *args, timeout=200)
    assert run.returncode == 0, run.stderr[-4000:]
    results = json.loads(out.read_text())
    assert results["meta"]["postgres"].startswith("PostgreSQL ")
    assert len(results["meta"]["load_average_at_end"]) == 3
    by_id = {w["id"]: w for w in results["workloads"]}
    assert set(by_id) == EXPECTED
    for workload in by_id.values():
        values = {}
        for side in SIDES:
            figure = workload[side]
            assert figure is not None and isinstance(figure["value"], float), (workload["id"], side)
            assert figure["value"] > 0, (workload["id"], side)
            values[side] = figure["value"]
        # The ratios are the figures' quotients (rounded to 3 places in the file).
        postgres = values["postgres"]
        assert workload["postgres_ratio"] == pytest.approx(postgres / values["reference"], abs=2e-3)
        assert workload["postgres_vs_sqlite"] == pytest.approx(postgres / values["dockyard"], abs=2e-3)
        # The server's CPU counts too (Dockyard on PostgreSQL: with the database's own processes).
        for side in SIDES:
            figure = workload[side]
            if workload["group"] == "requests":
                assert 0 < figure["p50_ms"] <= figure["p99_ms"], (workload["id"], side)
                assert figure["cpu_us_per_request"] > 0, (workload["id"], side)
            else:
                assert figure["pushes"] >= 1 and figure["cpu_s_per_gb"] > 0, (workload["id"], side)
    assert "| Dockyard (SQLite) | Dockyard (PostgreSQL) | reference |" in run.stdout
    assert "µs CPU)" in run.stdout and "CPU s/GB)" in run.stdout

    # The bench's PostgreSQL is gone: stopped, and its directory deleted.
    found = re.search(r"files in (\S+)", run.stderr)
    assert found, run.stderr[-2000:]
    assert not Path(found.group(1)).exists()

    # A saved run prints its PostgreSQL column again.
    again = bench_run("bench", "--report", str(out), timeout=60)
    assert again.returncode == 0, again.stderr
    assert "| Dockyard (PostgreSQL) |" in again.stdout


@pytest.mark.parametrize("value", ["postgres", "sqlite,mysql", ""])
def test_databases_flag_refuses_what_it_cannot_run(value: str, bench_run: BenchRun) -> None:
    run = bench_run("bench", "--databases", value, timeout=60)
    assert run.returncode == 2
    assert "--databases" in run.stderr
