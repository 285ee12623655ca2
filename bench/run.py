"""`python -m bench`: start both registries, run every workload against each in turn, report the ratios."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import workloads as w
from bench.client import RegistryError, make_blob_files
from bench.credentials import Credentials
from bench.loadgen import wrk_available
from bench.servers import Server, start_dockyard, start_reference

MiB = w.MiB
LOADGEN_WARN_PCT = 60.0


@dataclass(frozen=True)
class Plan:
    """How big and how long: --quick shrinks everything to fit in two minutes."""

    wrk_seconds: float
    sizes: dict[str, int]
    large: str
    transfer_budget: float
    chunk_size: int
    mixed_seconds: float
    mixed_clients: int
    tags: int
    repositories: int
    walk_budget: float
    walk_min_samples: int


FULL = Plan(
    wrk_seconds=5,
    sizes={"1MiB": MiB, "10MiB": 10 * MiB, "100MiB": 100 * MiB, "1GiB": 1024 * MiB},
    large="1GiB",
    transfer_budget=3.0,
    chunk_size=8 * MiB,
    mixed_seconds=20,
    mixed_clients=16,
    tags=100_000,
    repositories=10_000,
    walk_budget=10.0,
    walk_min_samples=50,
)
QUICK = Plan(
    wrk_seconds=1,
    sizes={"1MiB": MiB, "10MiB": 10 * MiB, "100MiB": 100 * MiB},
    large="100MiB",
    transfer_budget=0.4,
    chunk_size=8 * MiB,
    mixed_seconds=3,
    mixed_clients=16,
    tags=5_000,
    repositories=1_000,
    walk_budget=1.0,
    walk_min_samples=20,
)
WRK_CONNECTIONS = (1, 8, 32)
GROUPS = ("requests", "push", "pull", "mixed", "resources", "scale")


@dataclass
class Row:
    """One workload: both servers' figures, their ratio and the target, if it has one."""

    id: str
    group: str
    title: str
    metric: str
    higher_is_better: bool
    dockyard: w.Measurement | None = None
    reference: w.Measurement | None = None
    target: str | None = None
    met: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.dockyard is None or self.reference is None or not self.reference.value:
            return None
        return self.dockyard.value / self.reference.value

    def as_dict(self) -> dict[str, object]:
        def side(m: w.Measurement | None) -> dict[str, object] | None:
            if m is None:
                return None
            return {"value": round(m.value, 4), **m.details, "loadgen_cpu_pct": round(m.loadgen_cpu_pct, 1)}

        return {
            "id": self.id,
            "group": self.group,
            "title": self.title,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "dockyard": side(self.dockyard),
            "reference": side(self.reference),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": self.target,
            "met": self.met,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        """Back from as_dict(), for --report."""

        def side(raw: dict[str, Any] | None) -> w.Measurement | None:
            if raw is None:
                return None
            details = {k: v for k, v in raw.items() if k not in {"value", "loadgen_cpu_pct"}}
            return w.Measurement(raw["value"], details, raw["loadgen_cpu_pct"])

        return cls(
            id=data["id"],
            group=data["group"],
            title=data["title"],
            metric=data["metric"],
            higher_is_better=data["higher_is_better"],
            dockyard=side(data["dockyard"]),
            reference=side(data["reference"]),
            target=data["target"],
            met=data["met"],
            notes=list(data["notes"]),
        )


def _judge(row: Row, min_ratio: float | None = None, dockyard_below: float | None = None) -> None:
    if min_ratio is not None:
        row.target = f">= {min_ratio:.1f}x"
        row.met = row.ratio is not None and row.ratio >= min_ratio
    elif dockyard_below is not None:
        row.target = f"< {dockyard_below:g} {row.metric.split()[-1]}"
        row.met = row.dockyard is not None and row.dockyard.value < dockyard_below
    for name, m in (("dockyard", row.dockyard), ("reference", row.reference)):
        if m is not None and m.loadgen_cpu_pct > LOADGEN_WARN_PCT:
            row.notes.append(f"load generator at {m.loadgen_cpu_pct:.0f}% of a core during {name} run")


class Bench:
    """Holds the two servers and runs each workload on both, alternating which goes first."""

    def __init__(
        self, plan: Plan, auth: Credentials | None, servers: list[Server], log: Callable[[str], None]
    ):
        self.plan = plan
        self.auth = auth
        self.servers = servers
        self.seeded: dict[str, w.Seeded] = {}
        self.rows: list[Row] = []
        self.log = log
        self._turn = 0

    def _order(self) -> list[Server]:
        self._turn += 1
        return self.servers if self._turn % 2 else list(reversed(self.servers))

    def compare(self, row: Row, measure: Callable[[Server, w.Seeded], w.Measurement]) -> Row:
        for server in self._order():
            result = measure(server, self.seeded[server.name])
            setattr(row, server.name, result)
        self.log(f"  {row.title}: {_fmt_row_values(row)}")
        self.rows.append(row)
        return row

    def prepare(self) -> None:
        for server in self.servers:
            try:
                self.seeded[server.name] = w.prepare_small(server, self.auth)
            except RegistryError as exc:
                if "HTTP 401" in str(exc):
                    raise SystemExit(
                        f"{server.name} refused the credentials: --user must be the admin account "
                        "(its password is given to Dockyard as DOCKYARD_ADMIN_PASSWORD) or a user of its own"
                    ) from exc
                raise

    def requests(self) -> None:
        endpoints: list[tuple[str, str, Callable[[w.Seeded], str], bool]] = [
            ("catalog", "GET", lambda s: "/v2/_catalog", False),
            ("tag list", "GET", lambda s: f"/v2/{w.SMALL_REPO}/tags/list", False),
            ("manifest HEAD by tag", "HEAD", lambda s: f"/v2/{w.SMALL_REPO}/manifests/latest", True),
            ("manifest GET by tag", "GET", lambda s: f"/v2/{w.SMALL_REPO}/manifests/latest", True),
            (
                "manifest HEAD by digest",
                "HEAD",
                lambda s: f"/v2/{w.SMALL_REPO}/manifests/{s.manifest_digest}",
                True,
            ),
            (
                "manifest GET by digest",
                "GET",
                lambda s: f"/v2/{w.SMALL_REPO}/manifests/{s.manifest_digest}",
                True,
            ),
        ]
        for title, method, path, is_manifest in endpoints:
            for connections in WRK_CONNECTIONS:
                row = Row(
                    id=f"requests/{title.replace(' ', '-')}/c{connections}",
                    group="requests",
                    title=f"{title}, {connections} conn",
                    metric="requests/s",
                    higher_is_better=True,
                )
                measure = w.wrk_workload(method, path, connections, self.plan.wrk_seconds, self.auth)
                self.compare(row, measure)
                _judge(row, min_ratio=2.0 if is_manifest else None)

    def transfers(self, groups: set[str]) -> None:
        blobs = self.blobs
        plan = self.plan
        # The pull workload reads what the monolithic push stored, so pushes run first whatever is chosen.
        for label, blob in blobs.items():
            for chunked in (False, True):
                kind = "chunked" if chunked else "monolithic"
                row = Row(f"push/{kind}/{label}", "push", f"push {kind} {label}", "MiB/s", True)
                measure = w.push_workload(
                    blob, plan.chunk_size if chunked else None, plan.transfer_budget, self.auth
                )
                self.compare(row, measure)
                _judge(row, min_ratio=1.0)
        if "pull" in groups:
            for label, blob in blobs.items():
                row = Row(f"pull/{label}", "pull", f"blob GET {label}", "MiB/s", True)
                self.compare(row, w.pull_workload(blob, plan.transfer_budget, self.auth))
                _judge(row, min_ratio=1.0)

    def mixed(self) -> None:
        row = Row(
            "mixed/16-clients",
            "mixed",
            f"mixed 75% pull / 25% push, {self.plan.mixed_clients} clients, {self.plan.mixed_seconds:g} s",
            "MiB/s",
            True,
        )
        self.compare(
            row, w.mixed_workload(self.blobs, self.plan.mixed_clients, self.plan.mixed_seconds, self.auth)
        )
        _judge(row)

    def resources(self) -> None:
        label = self.plan.large
        figures: dict[str, w.ResourceFigures] = {}
        for server in self._order():
            figures[server.name] = w.measure_resources(server, self.blobs[label], self.auth)
        specs = [
            ("push-cpu", f"CPU per GB pushed ({label} push)", "CPU s/GB", "push_cpu_per_gb", None),
            ("pull-cpu", f"CPU per GB pulled ({label} pull x2)", "CPU s/GB", "pull_cpu_per_gb", None),
            (
                "peak-rss",
                f"peak memory (PSS sum), {label} push + pull",
                "MiB",
                "peak_pss_mib",
                250.0,
            ),
        ]
        for key, title, metric, attribute, limit in specs:
            row = Row(f"resources/{key}", "resources", title, metric, False)
            for name, fig in figures.items():
                details: dict[str, float | int | str] = {}
                if key == "peak-rss":
                    details["rss_sum_mib"] = round(fig.peak_rss_mib, 1)
                setattr(row, name, w.Measurement(getattr(fig, attribute), details, fig.loadgen_cpu_pct))
            self.rows.append(row)
            _judge(row, dockyard_below=limit)
            self.log(f"  {title}: {_fmt_row_values(row)}")

    def scale(self) -> None:
        plan = self.plan
        for server in self._order():
            seconds = w.seed_tags(server, self.auth, "bench/scale-tags", plan.tags)
            self.log(f"  seeded {plan.tags} tags into {server.name} in {seconds:.1f} s")
            seconds = w.seed_repositories(server, self.auth, "bench-catalog", plan.repositories)
            self.log(f"  seeded {plan.repositories} repositories into {server.name} in {seconds:.1f} s")
        walks = [
            ("tags", f"tag-list page (n=100), {plan.tags:,} tags", "/v2/bench/scale-tags/tags/list"),
            ("catalog", f"catalog page (n=100), {plan.repositories:,}+ repos", "/v2/_catalog"),
        ]
        for key, title, first in walks:
            row = Row(f"scale/{key}", "scale", title, "p99 ms", False)
            self.compare(
                row,
                lambda server, _s, first=first: w.walk_pages(  # type: ignore[misc]
                    server, self.auth, first, 100, plan.walk_budget, plan.walk_min_samples
                ),
            )
            _judge(row, dockyard_below=20.0)
            if row.reference and row.reference.details.get("max_items_per_page", 0) > 100:
                row.notes.append("the reference ignores n here and returns the whole list in one page")

    blobs: dict[str, w.BlobFile]


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _fmt_side(row: Row, m: w.Measurement | None) -> str:
    if m is None:
        return "-"
    text = _fmt(m.value)
    if row.group == "requests":
        text += f" ({m.details['p50_ms']:.2f} / {m.details['p99_ms']:.2f} ms)"
    elif "rss_sum_mib" in m.details:
        text += f" (RSS sum {m.details['rss_sum_mib']:.0f})"
    return text


def _fmt_row_values(row: Row) -> str:
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
    return f"dockyard {_fmt_side(row, row.dockyard)}, reference {_fmt_side(row, row.reference)}, {ratio}"


def render_table(rows: list[Row]) -> str:
    """A Markdown table: requests/s rows carry p50 / p99 latency in brackets."""
    lines = [
        "| workload | metric | Dockyard | reference | ratio | target | load gen CPU % | notes |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for row in rows:
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
        better = "higher is better" if row.higher_is_better else "lower is better"
        target = "" if row.target is None else f"{row.target} {'met' if row.met else '**MISSED**'}"
        loadgen = " / ".join(f"{m.loadgen_cpu_pct:.0f}" for m in (row.dockyard, row.reference) if m)
        lines.append(
            f"| {row.title} | {row.metric} ({better}) | {_fmt_side(row, row.dockyard)} | "
            f"{_fmt_side(row, row.reference)} | {ratio} | {target} | {loadgen} | {'; '.join(row.notes)} |"
        )
    return "\n".join(lines)


def _reference_version() -> str:
    try:
        out = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except OSError:
        return "unknown"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs: under two minutes")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write machine-readable results here")
    parser.add_argument(
        "--report", type=Path, metavar="FILE", help="print the table of a saved --json FILE; run nothing"
    )
    parser.add_argument("--user", default="admin", help="the user requests are made as (default admin)")
    parser.add_argument(
        "--password",
        help="the user's password, also given to Dockyard as DOCKYARD_ADMIN_PASSWORD (default: one made up "
        "for the run: access control is always on)",
    )
    parser.add_argument(
        "--basic",
        action="store_true",
        help="send Basic credentials on every request instead of bearer tokens from /auth/token per "
        "repository (what docker, skopeo, podman and containerd do)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        help="run only these workload groups (repeatable); the default is all",
    )
    return parser.parse_args(argv)


def _run_groups(bench: Bench, groups: set[str], data_dir: Path) -> None:
    bench.prepare()
    if groups & {"push", "pull", "mixed", "resources"}:
        bench.log("generating test data")
        bench.blobs = make_blob_files(data_dir, bench.plan.sizes)
    if "requests" in groups:
        bench.log("request rates (wrk)")
        bench.requests()
    if groups & {"push", "pull"}:
        bench.log("push and pull throughput")
        bench.transfers(groups)
    if "mixed" in groups:
        bench.log("mixed workload")
        bench.mixed()
    if "resources" in groups:
        bench.log("CPU and memory")
        bench.resources()
    if "scale" in groups:
        bench.log("scale")
        bench.scale()


def _report(bench: Bench, args: argparse.Namespace, started: float) -> None:
    elapsed = time.time() - started
    mode = "quick" if args.quick else "full"
    print(
        f"\nDockyard vs {_reference_version()}, {os.cpu_count()} cores, {mode} run ({elapsed:.0f} s), "
        f"Dockyard with {bench.auth.mode if bench.auth else 'no credentials'}, the reference without "
        "auth. Ratio = Dockyard / reference.\n"
    )
    print(render_table(bench.rows), flush=True)
    missed = [row.title for row in bench.rows if row.met is False]
    print(f"\nTargets: {sum(1 for r in bench.rows if r.met)} met, {len(missed)} missed.", flush=True)
    if args.json:
        payload = {
            "meta": {
                "mode": mode,
                "auth": bench.auth.mode if bench.auth else None,
                "cores": os.cpu_count(),
                "reference": _reference_version(),
                "started": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(),
                "elapsed_s": round(elapsed, 1),
                "loadgen_warn_pct": LOADGEN_WARN_PCT,
            },
            "workloads": [row.as_dict() for row in bench.rows],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        saved = json.loads(args.report.read_text())
        meta = saved["meta"]
        print(f"{meta['mode']} run, {meta['cores']} cores, {meta['reference']}, {meta['started']}\n")
        print(render_table([Row.from_dict(item) for item in saved["workloads"]]))
        return 0
    if not wrk_available():
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2
    plan = QUICK if args.quick else FULL
    groups = set(args.only or GROUPS)
    # Access control is always on in Dockyard. The reference runs without auth (htpasswd would make it
    # bcrypt every request): it answers /v2/ without a challenge, so it gets no Authorization header.
    password = args.password or secrets.token_urlsafe(18)
    auth = Credentials(args.user, password, basic=args.basic)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.time()
    servers: list[Server] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-data-") as data_dir:
            try:
                servers.append(start_dockyard(password))
                servers.append(start_reference())
                log(f"dockyard on {servers[0].base}, reference on {servers[1].base}")
                bench = Bench(plan, auth, servers, log)
                _run_groups(bench, groups, Path(data_dir))
            except BaseException:
                for server in servers:
                    log(f"--- last lines of the {server.name} log ---\n{server.log_tail()}")
                raise
            finally:
                for server in servers:
                    server.stop()
        _report(bench, args, started)
    finally:
        for server in servers:
            server.remove()
    return 0
