"""Running `python -m bench...` from the bench's tests, bounded in time without leaving servers behind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BenchRun = Callable[..., subprocess.CompletedProcess[str]]


def run_bench(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python -m MODULE ARGS` in the repository; past `timeout`, SIGTERM (the bench then stops its servers,
    its PostgreSQL and removes their temp dirs), SIGKILL if that takes over a minute, and fail."""
    command = [sys.executable, "-m", module, *args]
    process = subprocess.Popen(command, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        pytest.fail(f"python -m {module} took over {timeout:g} s; its output:\n{stderr[-4000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture
def bench_run() -> BenchRun:
    """`bench_run(module, *args, timeout=S)`: see run_bench."""
    return run_bench
