"""HEAD load for wrk's blind spot: wrk waits for a body after HEAD (it ignores the method when parsing).

Run as `python -m bench.headload URL SECONDS CONNECTIONS [Header: value ...]`; prints one JSON line
shaped like the wrk script's report. Raw keep-alive sockets and no HTTP library, so it stays cheap.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def _connection(
    host: str, port: int, request: bytes, deadline: float, latencies: list[int], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter_ns()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            latencies.append(time.perf_counter_ns() - started)
            if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
                errors[0] += 1
    except (OSError, asyncio.IncompleteReadError):
        errors[0] += 1
    finally:
        writer.close()


async def _run(url: str, seconds: float, connections: int, headers: list[str]) -> dict[str, int]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"HEAD {path} HTTP/1.1", f"Host: {host}:{port}", *headers, "", ""]
    request = "\r\n".join(lines).encode()
    latencies: list[int] = []
    errors = [0]
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(_connection(host, port, request, deadline, latencies, errors) for _ in range(connections))
    )
    duration = time.monotonic() - started
    latencies.sort()

    def pct(p: float) -> int:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] // 1000 if latencies else 0

    return {
        "requests": len(latencies),
        "duration_us": int(duration * 1e6),
        "socket_errors": 0,
        "non2xx": errors[0],
        "p50_us": pct(50),
        "p99_us": pct(99),
    }


def main() -> None:
    url, seconds, connections, *headers = sys.argv[1:]
    try:
        import uvloop  # optional: a faster event loop when installed

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_run(url, float(seconds), int(connections), headers))
    print("BENCH_JSON " + json.dumps(result))


if __name__ == "__main__":
    main()
