"""Request-rate load from wrk: a generated Lua script sets method and headers and reports percentiles."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_MARK = "BENCH_JSON "
_ROOT = Path(__file__).resolve().parent.parent

_SCRIPT = """\
wrk.method = {method}
wrk.path = {path}
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "{mark}{{\\"requests\\":%d,\\"duration_us\\":%d,\\"socket_errors\\":%d,\\"non2xx\\":%d,"
    .. "\\"p50_us\\":%d,\\"p99_us\\":%d}}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured, and what wrk itself cost."""

    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    loadgen_cpu_pct: float


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for these values


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    base: str,
    method: str,
    path: str,
    headers: dict[str, str],
    connections: int,
    seconds: float,
) -> WrkResult:
    """Run wrk (HEAD: bench.headload) for `seconds` with `connections` keep-alive connections."""
    lines = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
    script = _SCRIPT.format(method=_lua_string(method), path=_lua_string(path), headers=lines, mark=_MARK)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        script_path = Path(handle.name)
    if method == "HEAD":
        header_args = [f"{k}: {v}" for k, v in headers.items()]
        command = [sys.executable, "-m", "bench.headload", base + path, str(seconds), str(connections)]
        command += header_args
    else:
        # Two threads at most: the machine has two cores and the server needs them more than wrk does.
        threads = min(2, connections)
        command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s"]
        command += ["--latency", "--timeout", "10s", "-s", str(script_path), base + path]
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        finished = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 60, check=False, cwd=_ROOT
        )
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        script_path.unlink(missing_ok=True)
    report = next((ln for ln in finished.stdout.splitlines() if ln.startswith(_MARK)), None)
    if finished.returncode != 0 or report is None:
        raise RuntimeError(
            f"wrk failed ({finished.returncode}): {finished.stderr.strip() or finished.stdout}"
        )
    data = json.loads(report[len(_MARK) :])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    duration = data["duration_us"] / 1e6
    return WrkResult(
        requests=data["requests"],
        requests_per_s=data["requests"] / duration if duration else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["socket_errors"] + data["non2xx"],
        loadgen_cpu_pct=100 * cpu / wall if wall else 0.0,
    )
