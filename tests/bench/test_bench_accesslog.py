"""`python -m bench.accesslog` measures the access log lever end to end: it runs, and the lever works.

No figure is checked against another (timings depend on the machine); what is checked is that every row is
reported and that the server with `access_log = false` wrote no access line while the other wrote them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable

import pytest

BenchRun = Callable[..., subprocess.CompletedProcess[str]]  # the bench_run fixture (conftest.py)

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (scripts/install-test-deps)")


@pytest.mark.timeout(180)
def test_accesslog_bench_reports_every_row_and_the_lever_works(bench_run: BenchRun) -> None:
    run = bench_run("bench.accesslog", "--rounds", "1", "--seconds", "1", "--calls", "200", timeout=100)
    assert run.returncode == 0, run.stderr[-4000:]
    for variant in ("no middleware", "middleware, access log off", "middleware, access log on"):
        found = re.search(rf"^\| {variant} \| ([0-9.]+) \|$", run.stdout, re.MULTILINE)
        assert found and float(found.group(1)) > 0, (variant, run.stdout)
    for by in ("tag", "digest"):
        for connections in (1, 8):
            assert f"| manifest GET by {by}, {connections} conn | 1 |" in run.stdout
    lines = re.search(r"access log lines written for manifest GETs: on ([0-9,]+), off ([0-9,]+)", run.stdout)
    assert lines, run.stdout
    assert int(lines.group(1).replace(",", "")) > 0
    assert lines.group(2) == "0"
