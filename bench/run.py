"""`python -m bench`: start the registries, run every workload against each in turn, report the ratios.

Dockyard on SQLite and the reference registry run every workload; Dockyard on PostgreSQL (one replica, its own
throwaway PostgreSQL) runs the workloads a database shapes: manifest GET and pushes.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from bench.database import (
    POSTGRES,
    SQLITE,
    PostgresServer,
    parse_databases,
    postgres_installed,
    postmaster_pid,
    server_version,
    start_postgres,
)
from bench.loadgen import wrk_available
from bench.procs import interrupt_on_sigterm
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
# The PostgreSQL column: manifest GET at these connection counts, and pushes below the plan's large size.
POSTGRES_REQUESTS = ("manifest GET by tag", "manifest GET by digest")
POSTGRES_CONNECTIONS = (1, 8)
GROUPS = ("requests", "push", "pull", "mixed", "resources", "scale")
# `--only database`: just the workloads of the PostgreSQL column (a subset of requests and push).
DATABASE_GROUP = "database"


def _quotient(numerator: w.Measurement | None, denominator: w.Measurement | None) -> float | None:
    if numerator is None or denominator is None or not denominator.value:
        return None
    return numerator.value / denominator.value


@dataclass
class Row:
    """One workload: each server's figure, the ratios and the target, if it has one.

    `dockyard` is Dockyard on SQLite, `postgres` Dockyard on PostgreSQL (only some workloads); every ratio and
    target compares with the reference.
    """

    id: str
    group: str
    title: str
    metric: str
    higher_is_better: bool
    dockyard: w.Measurement | None = None
    reference: w.Measurement | None = None
    postgres: w.Measurement | None = None
    target: str | None = None
    met: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """Dockyard on SQLite ÷ the reference."""
        return _quotient(self.dockyard, self.reference)

    @property
    def postgres_ratio(self) -> float | None:
        """Dockyard on PostgreSQL ÷ the reference."""
        return _quotient(self.postgres, self.reference)

    @property
    def postgres_vs_sqlite(self) -> float | None:
        """Dockyard on PostgreSQL ÷ Dockyard on SQLite: what the database of a cluster costs."""
        return _quotient(self.postgres, self.dockyard)

    def sides(self) -> list[tuple[str, w.Measurement]]:
        """(server, figure) for every server measured on this row."""
        found = (("dockyard", self.dockyard), ("postgres", self.postgres), ("reference", self.reference))
        return [(name, m) for name, m in found if m is not None]

    def as_dict(self) -> dict[str, object]:
        def side(m: w.Measurement | None) -> dict[str, object] | None:
            if m is None:
                return None
            return {"value": round(m.value, 4), **m.details, "loadgen_cpu_pct": round(m.loadgen_cpu_pct, 1)}

        def rounded(ratio: float | None) -> float | None:
            return None if ratio is None else round(ratio, 3)

        return {
            "id": self.id,
            "group": self.group,
            "title": self.title,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "dockyard": side(self.dockyard),
            "reference": side(self.reference),
            "postgres": side(self.postgres),
            "ratio": rounded(self.ratio),
            "postgres_ratio": rounded(self.postgres_ratio),
            "postgres_vs_sqlite": rounded(self.postgres_vs_sqlite),
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
            postgres=side(data.get("postgres")),  # runs saved before the PostgreSQL column have none
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
    for name, m in row.sides():
        if m.loadgen_cpu_pct > LOADGEN_WARN_PCT:
            row.notes.append(f"load generator at {m.loadgen_cpu_pct:.0f}% of a core during {name} run")


class Bench:
    """Holds the servers and runs each workload on them, alternating which goes first."""

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
        # Only the workloads of the PostgreSQL column (`--only database` without requests or push).
        self.database_rows_only = False

    def _order(self, with_postgres: bool = False) -> list[Server]:
        self._turn += 1
        chosen = [s for s in self.servers if with_postgres or s.name != POSTGRES]
        return chosen if self._turn % 2 else list(reversed(chosen))

    def compare(
        self, row: Row, measure: Callable[[Server, w.Seeded], w.Measurement], with_postgres: bool = False
    ) -> Row:
        for server in self._order(with_postgres):
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
                on_postgres = title in POSTGRES_REQUESTS and connections in POSTGRES_CONNECTIONS
                if self.database_rows_only and not on_postgres:
                    continue
                self.compare(row, measure, with_postgres=on_postgres)
                _judge(row, min_ratio=2.0 if is_manifest else None)

    def transfers(self, groups: set[str]) -> None:
        blobs = self.blobs
        plan = self.plan
        # The pull workload reads what the monolithic push stored, so pushes run first whatever is chosen.
        for label, blob in blobs.items():
            if self.database_rows_only and label == plan.large:
                continue
            for chunked in (False, True):
                kind = "chunked" if chunked else "monolithic"
                row = Row(f"push/{kind}/{label}", "push", f"push {kind} {label}", "MiB/s", True)
                measure = w.push_workload(
                    blob, plan.chunk_size if chunked else None, plan.transfer_budget, self.auth
                )
                self.compare(row, measure, with_postgres=label != plan.large)
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
    # Runs saved before the server's CPU was measured have no cpu_* details.
    if row.group == "requests":
        cpu = m.details.get("cpu_us_per_request")
        text += f" ({m.details['p50_ms']:.2f} / {m.details['p99_ms']:.2f} ms"
        text += ")" if cpu is None else f"; {cpu:.0f} µs CPU)"
    elif "cpu_s_per_gb" in m.details:
        text += f" ({m.details['cpu_s_per_gb']:.2f} CPU s/GB)"
    elif "rss_sum_mib" in m.details:
        text += f" (RSS sum {m.details['rss_sum_mib']:.0f})"
    return text


def _fmt_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _fmt_row_values(row: Row) -> str:
    text = f"dockyard {_fmt_side(row, row.dockyard)}, reference {_fmt_side(row, row.reference)}, "
    text += _fmt_ratio(row.ratio)
    if row.postgres is not None:
        text += f"; on PostgreSQL {_fmt_side(row, row.postgres)}, {_fmt_ratio(row.postgres_ratio)}"
        text += f", {_fmt_ratio(row.postgres_vs_sqlite)} of SQLite"
    return text


def render_table(rows: list[Row]) -> str:
    """A Markdown table: requests/s rows carry p50 / p99 latency in brackets.

    With PostgreSQL figures, three more columns: Dockyard on PostgreSQL, its ratio to the reference and to
    Dockyard on SQLite; the load generator's CPU is then given for SQLite / PostgreSQL / reference.
    """
    with_postgres = any(row.postgres is not None for row in rows)
    if with_postgres:
        head = "| workload | metric | Dockyard (SQLite) | Dockyard (PostgreSQL) | reference | ratio "
        head += "| PostgreSQL ratio | PostgreSQL ÷ SQLite | target | load gen CPU % | notes |"
        rule = "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"
    else:
        head = "| workload | metric | Dockyard | reference | ratio | target | load gen CPU % | notes |"
        rule = "| --- | --- | ---: | ---: | ---: | --- | ---: | --- |"
    lines = [head, rule]
    for row in rows:
        better = "higher is better" if row.higher_is_better else "lower is better"
        target = "" if row.target is None else f"{row.target} {'met' if row.met else '**MISSED**'}"
        loadgen = " / ".join(f"{m.loadgen_cpu_pct:.0f}" for _, m in row.sides())
        cells = [row.title, f"{row.metric} ({better})", _fmt_side(row, row.dockyard)]
        if with_postgres:
            cells.append(_fmt_side(row, row.postgres))
        cells += [_fmt_side(row, row.reference), _fmt_ratio(row.ratio)]
        if with_postgres:
            cells += [_fmt_ratio(row.postgres_ratio), _fmt_ratio(row.postgres_vs_sqlite)]
        cells += [target, loadgen, "; ".join(row.notes)]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def _reference_version() -> str:
    try:
        out = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except OSError:
        return "unknown"


def _databases(value: str) -> list[str]:
    try:
        return parse_databases(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


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
        "--databases",
        type=_databases,
        help="Dockyard's metadata databases, comma-separated: sqlite (every workload) and postgres (a "
        "column for manifest GET and pushes, on a PostgreSQL the bench starts); default sqlite,postgres when "
        "PostgreSQL is installed, else sqlite",
    )
    parser.add_argument(
        "--wrk-seconds",
        type=float,
        help="seconds per request-rate run (default 5, --quick 1)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=(*GROUPS, DATABASE_GROUP),
        help="run only these workload groups (repeatable); the default is all; database: only the workloads "
        "of the PostgreSQL column",
    )
    return parser.parse_args(argv)


def _run_groups(bench: Bench, groups: set[str], data_dir: Path) -> None:
    if DATABASE_GROUP in groups:
        bench.database_rows_only = not groups & {"requests", "push", "pull"}
        groups = groups | {"requests", "push"}
    bench.prepare()
    if groups & {"push", "pull", "mixed", "resources"}:
        bench.log("generating test data")
        sizes = bench.plan.sizes
        if bench.database_rows_only:
            sizes = {label: size for label, size in sizes.items() if label != bench.plan.large}
        bench.blobs = make_blob_files(data_dir, sizes)
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


def _report(bench: Bench, args: argparse.Namespace, started: float, postgres: str | None) -> None:
    elapsed = time.time() - started
    mode = "quick" if args.quick else "full"
    print(
        f"\nDockyard vs {_reference_version()}, {os.cpu_count()} cores, {mode} run ({elapsed:.0f} s), "
        f"Dockyard with {bench.auth.mode if bench.auth else 'no credentials'}, the reference without "
        "auth. Ratio = Dockyard / reference."
    )
    if postgres:
        print(
            f"PostgreSQL column: one Dockyard replica on {postgres} (loopback TCP, fsync on), for manifest "
            "GET and pushes; its ratio is to the reference; PostgreSQL ÷ SQLite compares the two Dockyards."
        )
    print(f"Load average (1, 5, 15 min) at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
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
                "postgres": postgres,
                "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            },
            "workloads": [row.as_dict() for row in bench.rows],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_on_sigterm()
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
    if args.wrk_seconds is not None:
        plan = dataclasses.replace(plan, wrk_seconds=args.wrk_seconds)
    groups = set(args.only or GROUPS)
    databases = args.databases or ([SQLITE, POSTGRES] if postgres_installed() else [SQLITE])
    if POSTGRES in databases and not postgres_installed():
        print("PostgreSQL is missing: apt-get install -y postgresql, or --databases sqlite", file=sys.stderr)
        return 2
    if POSTGRES not in databases and groups == {DATABASE_GROUP}:
        print("--only database needs the PostgreSQL column: --databases sqlite,postgres", file=sys.stderr)
        return 2
    # Access control is always on in Dockyard. The reference runs without auth (htpasswd would make it
    # bcrypt every request): it answers /v2/ without a challenge, so it gets no Authorization header.
    password = args.password or secrets.token_urlsafe(18)
    auth = Credentials(args.user, password, basic=args.basic)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.time()
    servers: list[Server] = []
    database: PostgresServer | None = None
    postgres_version = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-data-") as data_dir:
            try:
                servers.append(start_dockyard(password))
                if POSTGRES in databases:
                    database = start_postgres()
                    postgres_version = server_version(database)
                    url = database.create_database("dockyard")
                    log(f"{postgres_version} on 127.0.0.1:{database.port}, files in {database.base}")
                    servers.append(start_dockyard(password, database_url=url, name=POSTGRES))
                    servers[-1].cpu_roots.append(postmaster_pid(database))
                servers.append(start_reference())
                log(", ".join(f"{server.name} on {server.base}" for server in servers))
                bench = Bench(plan, auth, servers, log)
                _run_groups(bench, groups, Path(data_dir))
            except BaseException:
                for server in servers:
                    log(f"--- last lines of the {server.name} log ---\n{server.log_tail()}")
                if database is not None:
                    log(f"--- last lines of the PostgreSQL log ---\n{database.log(3000)}")
                raise
            finally:
                for server in servers:
                    server.stop()
                if database is not None:
                    database.stop()  # after the replica on it; also deletes its files
        _report(bench, args, started, postgres_version)
    finally:
        for server in servers:
            server.remove()
    return 0
