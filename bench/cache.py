"""`python -m bench.cache`: why caches exist.

The main registry runs in a network namespace of its own, joined by a veth pair to a second namespace that
holds a cache and the client; the main registry's side of the link is shaped to 100 Mbit/s (`tc ... tbf`). A
user with no cache pulls a ~200 MB image across the link; a user whose profile names the cache pulls it
twice through the main registry's URL (cold: the cache fetches across the link; warm: all hits). Then, on
loopback, the cache's own blob GET throughput against the main registry's. Needs root (namespaces) and
skopeo; stops and removes all it starts.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.procs import free_port

PASSWORD = "bench-cache-password"  # noqa: S105 (a throwaway server's password)
REPO = "bench/big"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def _dockyard() -> str:
    script = Path(sys.executable).parent / "dockyard"
    return str(script) if script.exists() else shutil.which("dockyard") or "dockyard"


def _run(argv: Sequence[str], namespace: str | None = None, timeout: float = 600) -> str:
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    done = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


@dataclass
class Link:
    """Two namespaces joined by a veth pair; the main side's egress shaped by a token bucket."""

    main: str
    edge: str
    main_ip: str
    edge_ip: str


@contextlib.contextmanager
def shaped_link(rate: str) -> Iterator[Link]:
    """Create the namespaces and the link; remove them (and the veth) at the end."""
    tag = f"{os.getpid() % 100000}"
    link = Link(f"dyb-main-{tag}", f"dyb-edge-{tag}", "10.77.0.1", "10.77.0.2")
    main_if, edge_if = f"dybm{tag}", f"dybe{tag}"
    try:
        for namespace in (link.main, link.edge):
            _run(["ip", "netns", "add", namespace])
            _run(["ip", "link", "set", "lo", "up"], namespace)
        _run(["ip", "link", "add", main_if, "type", "veth", "peer", "name", edge_if])
        _run(["ip", "link", "set", main_if, "netns", link.main])
        _run(["ip", "link", "set", edge_if, "netns", link.edge])
        for namespace, interface, address in (
            (link.main, main_if, link.main_ip),
            (link.edge, edge_if, link.edge_ip),
        ):
            _run(["ip", "addr", "add", f"{address}/24", "dev", interface], namespace)
            _run(["ip", "link", "set", interface, "up"], namespace)
        _run(
            [
                "tc",
                "qdisc",
                "add",
                "dev",
                main_if,
                "root",
                "tbf",
                "rate",
                rate,
                "burst",
                "64kb",
                "latency",
                "400ms",
            ],
            link.main,
        )
        yield link
    finally:
        for namespace in (link.main, link.edge):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


class Process:
    """A server started (perhaps in a namespace) with its output in a log file."""

    def __init__(
        self, argv: Sequence[str], log: Path, namespace: str | None = None, env: dict[str, str] | None = None
    ):
        prefix = ["ip", "netns", "exec", namespace] if namespace else []
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [*prefix, *argv], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.log = log

    def stop(self) -> None:
        """Stop the process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, 15)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 9)
            self.process.wait(10)


def _curl(url: str, *options: str, namespace: str | None = None) -> str:
    return _run(["curl", "-sS", "--max-time", "60", *options, url], namespace)


def _wait(url: str, namespace: str | None, process: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            raise RuntimeError(f"server exited:\n{process.log.read_text()[-3000:]}")
        with contextlib.suppress(RuntimeError):
            if _curl(url, "-o", "/dev/null", "-w", "%{http_code}", namespace=namespace) == "200":
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer:\n{process.log.read_text()[-3000:]}")


def _api(base: str, method: str, path: str, user: str, body: object, namespace: str | None) -> str:
    password = PASSWORD
    options = ["-X", method, "-u", f"{user}:{password}", "-H", "Content-Type: application/json"]
    if body is not None:
        options += ["--data", json.dumps(body)]
    return _curl(f"{base}/api/v1{path}", *options, "--fail-with-body", namespace=namespace)


def build_image(directory: Path, total_mb: int, layers: int = 4) -> list[tuple[str, int]]:
    """An OCI layout of `layers` uncompressed random layers, `total_mb` in all; (digest, size) of each."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}", len(data)

    descriptors = []
    for number in range(layers):
        payload = io.BytesIO()
        with tarfile.open(fileobj=payload, mode="w") as archive:
            content = os.urandom(total_mb * 1024 * 1024 // layers)
            info = tarfile.TarInfo(f"data/{number}.bin")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        descriptors.append(put(payload.getvalue()))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [d for d, _ in descriptors]},
    }
    config_desc = put(json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_desc[0],
            "size": config_desc[1],
        },
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s in descriptors],
    }
    manifest_desc = put(json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_desc[0],
                "size": manifest_desc[1],
                "annotations": {"org.opencontainers.image.ref.name": "big"},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index))
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return [config_desc, *descriptors]


def _pull_seconds(registry: str, user: str, target: Path, namespace: str | None) -> float:
    shutil.rmtree(target, ignore_errors=True)
    started = time.perf_counter()
    _run(
        ["skopeo", "copy", "--src-tls-verify=false", "--src-creds", f"{user}:{PASSWORD}",
         f"docker://{registry}/{REPO}:1", f"dir:{target}"],
        namespace,
    )  # fmt: skip
    return time.perf_counter() - started


def _setup_users_and_cache(base: str, cache_url: str, namespace: str | None) -> None:
    for user in ("alice", "bob"):
        _api(base, "POST", "/users", "admin", {"name": user, "password": PASSWORD}, namespace)
    _api(base, "PATCH", f"/repositories/{REPO}", "admin", {"visibility": "public"}, namespace)
    _api(base, "POST", "/caches", "admin", {"name": "edge", "url": cache_url}, namespace)
    _api(base, "PATCH", "/me", "alice", {"cache": "edge"}, namespace)
    deadline = time.monotonic() + 30
    while not json.loads(_api(base, "GET", "/caches/edge", "admin", None, namespace))["healthy"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the registry never saw the cache answer")
        time.sleep(0.3)


def _main_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(
        DOCKYARD_ADMIN_PASSWORD=PASSWORD,
        DOCKYARD_CACHE_CHECK_INTERVAL_SECONDS="1",
        DOCKYARD_LOG_LEVEL="warning",
    )
    return env


def across_the_link(work: Path, layout: Path, rate: str) -> dict[str, float]:
    """Pull times across the shaped link: straight, through the cache cold, and warm."""
    results: dict[str, float] = {}
    with shaped_link(rate) as link, contextlib.ExitStack() as stop:
        main_base = f"http://{link.main_ip}:5000"
        main = Process(
            [_dockyard(), "serve", "--data-dir", str(work / "main"), "--listen", f"{link.main_ip}:5000"],
            work / "main.log",
            link.main,
            _main_env(),
        )
        stop.callback(main.stop)
        _wait(f"{main_base}/_ping", link.main, main)
        cache_url = f"http://{link.edge_ip}:5001"
        cache = Process(
            [_dockyard(), "cache", "serve", "--upstream", main_base, "--data-dir", str(work / "cache"),
             "--listen", f"{link.edge_ip}:5001"],
            work / "cache.log",
            link.edge,
        )  # fmt: skip
        stop.callback(cache.stop)
        _wait(f"{cache_url}/_ping", link.edge, cache)
        _run(
            ["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"admin:{PASSWORD}",
             f"oci:{layout}:big", f"docker://{link.main_ip}:5000/{REPO}:1"],
            link.main,
        )  # fmt: skip
        _setup_users_and_cache(main_base, cache_url, link.main)
        registry = f"{link.main_ip}:5000"
        results["direct_s"] = _pull_seconds(registry, "bob", work / "pull-bob", link.edge)
        results["cache_cold_s"] = _pull_seconds(registry, "alice", work / "pull-cold", link.edge)
        results["cache_warm_s"] = _pull_seconds(registry, "alice", work / "pull-warm", link.edge)
        stats = json.loads(_curl(f"{cache_url}/_ping", namespace=link.edge))
        results["cache_hits"] = stats["hits"]
        results["cache_misses"] = stats["misses"]
    return results


def _get_seconds(url: str, options: Sequence[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        _curl(url, *options, "-o", "/dev/null", "--fail")
        best = min(best, time.perf_counter() - started)
    return best


def on_loopback(work: Path, layout: Path, repeat: int) -> dict[str, float]:
    """The cache's blob GET throughput against the main registry's, both on 127.0.0.1 (best of `repeat`)."""
    main_port, cache_port = free_port(), free_port()
    main_base, cache_url = f"http://127.0.0.1:{main_port}", f"http://127.0.0.1:{cache_port}"
    with contextlib.ExitStack() as stop:
        main = Process(
            [_dockyard(), "serve", "--data-dir", str(work / "lo-main"), "--listen", f"127.0.0.1:{main_port}"],
            work / "lo-main.log",
            env=_main_env(),
        )
        stop.callback(main.stop)
        _wait(f"{main_base}/_ping", None, main)
        cache = Process(
            [_dockyard(), "cache", "serve", "--upstream", main_base, "--data-dir", str(work / "lo-cache"),
             "--listen", f"127.0.0.1:{cache_port}"],
            work / "lo-cache.log",
        )  # fmt: skip
        stop.callback(cache.stop)
        _wait(f"{cache_url}/_ping", None, cache)
        _run(
            ["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"admin:{PASSWORD}",
             f"oci:{layout}:big", f"docker://127.0.0.1:{main_port}/{REPO}:1"],
        )  # fmt: skip
        _setup_users_and_cache(main_base, cache_url, None)
        # skopeo compresses layers on the way in: take the largest from the manifest the registry holds.
        manifest = json.loads(
            _curl(
                f"{main_base}/v2/{REPO}/manifests/1",
                "-u", f"admin:{PASSWORD}", "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
            )
        )  # fmt: skip
        largest = max(manifest["layers"], key=lambda layer: layer["size"])
        digest, size = largest["digest"], largest["size"]
        path = f"/v2/{REPO}/blobs/{digest}"
        location = _curl(
            f"{main_base}{path}", "-u", f"alice:{PASSWORD}", "-o", "/dev/null", "-w", "%{redirect_url}"
        )
        if not location:
            raise RuntimeError(f"the registry did not redirect alice:\n{main.log.read_text()[-3000:]}")
        _curl(location, "-o", "/dev/null", "--fail")  # fills the cache
        main_s = _get_seconds(f"{main_base}{path}", ["-u", f"bob:{PASSWORD}"], repeat)
        cache_s = _get_seconds(location, [], repeat)
    mib = size / 2**20
    return {"blob_mib": mib, "main_mib_s": mib / main_s, "cache_mib_s": mib / cache_s}


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print them (and write JSON with --json)."""
    parser = argparse.ArgumentParser(prog="python -m bench.cache", description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="image size (default 200)")
    parser.add_argument("--rate", default="100mbit", help="the link's rate for tc tbf (default 100mbit)")
    parser.add_argument("--repeat", type=int, default=5, help="loopback GETs per side (best of)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: it creates network namespaces", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    try:
        layout = work / "image"
        blobs = build_image(layout, args.size_mb)
        link = across_the_link(work, layout, args.rate)
        loop = on_loopback(work, layout, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = link["direct_s"] / link["cache_warm_s"]
    print(f"image: {args.size_mb} MB in {len(blobs)} blobs; link: {args.rate} (tc tbf)")
    print(f"  pull across the link, no cache:        {link['direct_s']:7.2f} s")
    print(f"  pull through the cache, cold:          {link['cache_cold_s']:7.2f} s")
    print(f"  pull through the cache, warm:          {link['cache_warm_s']:7.2f} s")
    print(f"  warm cache against the link:           {ratio:7.1f}x faster (goal: 5x)")
    print(f"  cache counters: {int(link['cache_misses'])} misses, {int(link['cache_hits'])} hits")
    print(f"loopback blob GET of {loop['blob_mib']:.0f} MiB (best of {args.repeat}):")
    print(f"  main registry {loop['main_mib_s']:7.0f} MiB/s, cache {loop['cache_mib_s']:7.0f} MiB/s, "
          f"cache/main {loop['cache_mib_s'] / loop['main_mib_s']:.2f}x")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"link": link, "loopback": loop, "warm_speedup": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
