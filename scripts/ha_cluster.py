"""A Dockyard high-availability cluster on one machine, for trying it out, for tests and for benchmarks.

Per node: an etcd member, a Patroni-managed PostgreSQL (synchronous replication) and a Dockyard replica; one
blob directory shared by every replica, and HAProxy in front, health-checked on /_ping. Everything listens on
127.0.0.1. `up` prints the registry's URL and every process id; `down` stops only what `up` started (the pids
recorded in the state file); `kill-node` and `start-node` take one node down whole (kill -9) and back.

Run as root (PostgreSQL runs as the `postgres` user, as it refuses root). Debian packages (etcd-server,
haproxy, postgresql) and Patroni from PyPI (in a virtualenv the `postgres` user can read) are installed when
missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dockyard.processes import alive as _alive

REPO = Path(__file__).resolve().parents[1]
# Root-owned and traversable by the postgres user; a fixed place, so `down` finds what `up` started.
DEFAULT_DIR = Path("/var/lib/dockyard-ha")
PATRONI_VENV = Path("/opt/dockyard-ha/patroni")
PATRONI_SPEC = "patroni[etcd3,psycopg3]>=4.1,<4.2"
DEBIAN_PACKAGES = ("etcd-server", "haproxy", "postgresql")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# Throwaway, loopback-only credentials of the local cluster (never used anywhere else).
SUPERUSER_PASSWORD = "ha-superuser"  # noqa: S105
REPLICATION_PASSWORD = "ha-replication"  # noqa: S105
DOCKYARD_DB_PASSWORD = "ha-dockyard"  # noqa: S105
ADMIN_PASSWORD = "ha-admin-password"  # noqa: S105


@dataclass
class Node:
    """One node's ports and the processes it runs."""

    index: int
    etcd_client: int
    etcd_peer: int
    patroni_api: int
    postgres: int
    dockyard: int
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """node0, node1, ..."""
        return f"node{self.index}"


@dataclass
class Cluster:
    """What `up` started, kept in <dir>/cluster.json for `down`, `status` and the node commands."""

    directory: str
    base_port: int
    nodes: list[Node]
    haproxy_pid: int = 0

    @property
    def path(self) -> Path:
        """The state directory."""
        return Path(self.directory)

    @property
    def url(self) -> str:
        """Where clients reach the registry: HAProxy."""
        return f"http://127.0.0.1:{self.base_port}"

    def save(self) -> None:
        """Write the state file."""
        (self.path / "cluster.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path) -> Cluster:
        """Read the state file."""
        raw = json.loads((directory / "cluster.json").read_text())
        raw["nodes"] = [Node(**node) for node in raw["nodes"]]
        return cls(**raw)

    def database_url(self) -> str:
        """Every member, the writable one chosen at connect time (psycopg's target_session_attrs)."""
        hosts = "&".join(f"host=127.0.0.1:{node.postgres}" for node in self.nodes)
        return (
            f"postgresql+psycopg://dockyard:{DOCKYARD_DB_PASSWORD}@/dockyard?{hosts}"
            "&target_session_attrs=read-write&connect_timeout=3"
        )


def log(message: str) -> None:
    """Progress on stderr; stdout carries the summary."""
    print(message, file=sys.stderr, flush=True)


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """A command that must succeed."""
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kwargs)


def install() -> None:
    """Debian packages and the Patroni virtualenv, when missing."""
    missing = [
        p for p in DEBIAN_PACKAGES if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode
    ]
    if missing:
        log(f"installing {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)
    if not (PATRONI_VENV / "bin" / "patroni").exists():
        log("installing Patroni into " + str(PATRONI_VENV))
        # Debian's own Python: the postgres user must be able to read the interpreter and the packages.
        run(["/usr/bin/python3", "-m", "venv", str(PATRONI_VENV)])
        run([str(PATRONI_VENV / "bin" / "pip"), "install", "-q", PATRONI_SPEC])
        for path in [PATRONI_VENV, *PATRONI_VENV.parents][:2]:
            path.chmod(0o755)


def _popen(argv: list[str], logfile: Path, user: str | None = None, env: dict[str, str] | None = None) -> int:
    prefix = ["runuser", "-u", user, "--"] if user else []
    with open(logfile, "ab") as out:
        process = subprocess.Popen(
            [*prefix, *argv], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return process.pid


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (loopback URLs we built)
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def _wait(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise SystemExit(f"{what} did not come up within {timeout:g} s (logs in the cluster directory)")


def start_etcd(cluster: Cluster, node: Node) -> None:
    """The node's etcd member (the cluster's quorum store)."""
    members = ",".join(f"{n.name}=http://127.0.0.1:{n.etcd_peer}" for n in cluster.nodes)
    data = cluster.path / node.name / "etcd"
    new = not data.exists()
    argv = [
        "etcd", "--name", node.name, "--data-dir", str(data),
        "--listen-client-urls", f"http://127.0.0.1:{node.etcd_client}",
        "--advertise-client-urls", f"http://127.0.0.1:{node.etcd_client}",
        "--listen-peer-urls", f"http://127.0.0.1:{node.etcd_peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{node.etcd_peer}",
        "--initial-cluster", members, "--initial-cluster-token", "dockyard-ha",
        "--initial-cluster-state", "new" if new else "existing",
    ]  # fmt: skip
    node.pids["etcd"] = _popen(argv, cluster.path / node.name / "etcd.log")


def patroni_config(cluster: Cluster, node: Node) -> str:
    """Patroni's settings for one node (YAML is a superset of JSON)."""
    home = cluster.path / node.name
    config = {
        "scope": "dockyard",
        "name": node.name,
        "restapi": {
            "listen": f"127.0.0.1:{node.patroni_api}",
            "connect_address": f"127.0.0.1:{node.patroni_api}",
        },
        "etcd3": {"hosts": [f"127.0.0.1:{n.etcd_client}" for n in cluster.nodes]},
        "bootstrap": {
            "dcs": {
                # Short timings so a failover takes seconds on one machine; see docs/high-availability.md.
                "ttl": 10,
                "loop_wait": 2,
                "retry_timeout": 5,
                "maximum_lag_on_failover": 1048576,
                "synchronous_mode": True,
                "postgresql": {
                    "use_pg_rewind": True,
                    "parameters": {"max_connections": 200, "wal_level": "replica", "hot_standby": "on"},
                },
            },
            "initdb": [{"encoding": "UTF8"}, "data-checksums"],
            "pg_hba": [
                "local all all trust",
                "host replication replicator 127.0.0.1/32 scram-sha-256",
                "host all all 127.0.0.1/32 scram-sha-256",
            ],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{node.postgres}",
            "connect_address": f"127.0.0.1:{node.postgres}",
            "data_dir": str(home / "pg"),
            "bin_dir": str(PG_BIN),
            "pgpass": str(home / "pgpass"),
            "authentication": {
                "replication": {"username": "replicator", "password": REPLICATION_PASSWORD},
                "superuser": {"username": "postgres", "password": SUPERUSER_PASSWORD},
                "rewind": {"username": "postgres", "password": SUPERUSER_PASSWORD},
            },
            "parameters": {"unix_socket_directories": str(home)},
        },
    }
    return json.dumps(config, indent=2)


def start_patroni(cluster: Cluster, node: Node) -> None:
    """The node's Patroni, which runs its PostgreSQL (as the postgres user)."""
    home = cluster.path / node.name
    config = home / "patroni.yml"
    config.write_text(patroni_config(cluster, node))
    shutil.chown(home, "postgres", "postgres")
    shutil.chown(config, "postgres", "postgres")
    logfile = home / "patroni.log"
    logfile.touch()
    shutil.chown(logfile, "postgres", "postgres")
    node.pids["patroni"] = _popen(
        [str(PATRONI_VENV / "bin" / "patroni"), str(config)], logfile, user="postgres"
    )


def patroni_members(cluster: Cluster) -> list[dict[str, Any]]:
    """The database members as Patroni sees them (from any node's REST API that answers)."""
    for node in cluster.nodes:
        status, body = _get(f"http://127.0.0.1:{node.patroni_api}/cluster")
        if status == 200:
            members: list[dict[str, Any]] = json.loads(body).get("members", [])
            return members
    return []


def _psql(cluster: Cluster, sql: str) -> None:
    leader = next(m for m in patroni_members(cluster) if m.get("role") == "leader")
    port = int(leader["port"])
    run(
        ["runuser", "-u", "postgres", "--", str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(port),
         "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env={**os.environ, "PGPASSWORD": SUPERUSER_PASSWORD},
    )  # fmt: skip


def start_dockyard(cluster: Cluster, node: Node) -> None:
    """The node's Dockyard replica: the shared database and blob directory, its own port."""
    home = cluster.path / node.name
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKYARD_")}
    env.update(
        DOCKYARD_DATABASE_URL=cluster.database_url(),
        DOCKYARD_STORAGE__FILESYSTEM__PATH=str(cluster.path / "blobs"),
        DOCKYARD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        DOCKYARD_EXTERNAL_URL=cluster.url,
        DOCKYARD_LOG_LEVEL="warning",
        # `dockyard cluster status` and GET /api/v1/cluster show the database members from these.
        DOCKYARD_CLUSTER=json.dumps(
            {"patroni_urls": [f"http://127.0.0.1:{n.patroni_api}" for n in cluster.nodes]}
        ),
    )
    dockyard = REPO / ".venv" / "bin" / "dockyard"
    argv = [
        str(dockyard),
        "serve",
        "--data-dir",
        str(home / "dockyard"),
        "--listen",
        f"127.0.0.1:{node.dockyard}",
    ]
    argv += ["--workers", "2"]
    node.pids["dockyard"] = _popen(argv, home / "dockyard.log", env=env)


def haproxy_config(cluster: Cluster) -> str:
    """HAProxy in front of the replicas: /_ping health checks, no buffering, long timeouts for big blobs."""
    servers = "\n".join(
        f"    server {n.name} 127.0.0.1:{n.dockyard} check inter 1s fall 2 rise 2"
        " observe layer4 error-limit 1 on-error mark-down"
        for n in cluster.nodes
    )
    return f"""global
    maxconn 4096
    # One line per request in haproxy.log: which replica answered what (and HAProxy's own 503s).
    log stdout format raw local0
defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout http-request 30s
    # A connection refused by a replica that died since the last check is retried on another one at once.
    option redispatch 1
    # With two of three replicas just dead, a retry can land on the other dead one before its check fails:
    # enough retries to reach the live one (each refused connection also marks its replica down at once).
    retries 5
frontend registry
    bind 127.0.0.1:{cluster.base_port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /_ping
    http-check expect status 200
    # A busy survivor's /_ping may take over a second (the check's default timeout is `inter`); marking
    # the last replica down for that would answer every request 503 from HAProxy itself.
    timeout check 4s
{servers}
"""


def start_haproxy(cluster: Cluster) -> None:
    """HAProxy, in the foreground of its own process group."""
    config = cluster.path / "haproxy.cfg"
    config.write_text(haproxy_config(cluster))
    cluster.haproxy_pid = _popen(["haproxy", "-db", "-f", str(config)], cluster.path / "haproxy.log")


def postmaster_pid(cluster: Cluster, node: Node) -> int | None:
    """PostgreSQL's main process of a node (Patroni's child), from its pid file."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((cluster.path / node.name / "pg" / "postmaster.pid").read_text().split()[0])
    return None


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def kill_node(cluster: Cluster, node: Node) -> None:
    """The whole node at once, as a power cut would: etcd, Patroni, PostgreSQL and Dockyard, kill -9."""
    postmaster = postmaster_pid(cluster, node)
    for pid in node.pids.values():
        _kill_group(pid, signal.SIGKILL)
    if postmaster is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster, signal.SIGKILL)
        # Its backends would otherwise linger holding the port.
        subprocess.run(["pkill", "-9", "-f", str(cluster.path / node.name / "pg")], check=False)
    node.pids = {}


def start_node(cluster: Cluster, node: Node, with_dockyard: bool = True) -> None:
    """Start a node's processes (again)."""
    (cluster.path / node.name).mkdir(parents=True, exist_ok=True)
    start_etcd(cluster, node)
    start_patroni(cluster, node)
    if with_dockyard:
        start_dockyard(cluster, node)


def quorum(cluster: Cluster) -> tuple[str | None, int]:
    """The leader's name (if any) and how many members stream from it."""
    members = patroni_members(cluster)
    leader = next((m["name"] for m in members if m.get("role") == "leader"), None)
    streaming = sum(1 for m in members if m.get("state") == "streaming")
    return leader, streaming


def up(directory: Path, nodes: int, base_port: int) -> Cluster:
    """Start everything and wait until it serves."""
    if (directory / "cluster.json").exists():
        raise SystemExit(f"{directory} already holds a cluster: `down` it first (or use --dir)")
    install()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    (directory / "blobs").mkdir(mode=0o700, exist_ok=True)
    cluster = Cluster(
        str(directory),
        base_port,
        [
            Node(i, base_port + 10 * i + 11, base_port + 10 * i + 12, base_port + 10 * i + 13,
                 base_port + 10 * i + 14, base_port + 10 * i + 15)
            for i in range(nodes)
        ],
    )  # fmt: skip
    try:
        for node in cluster.nodes:
            (cluster.path / node.name).mkdir(exist_ok=True)
            start_etcd(cluster, node)
        cluster.save()
        for node in cluster.nodes:
            start_patroni(cluster, node)
        cluster.save()
        _wait("the database cluster", lambda: quorum(cluster)[0] and quorum(cluster)[1] >= nodes - 1, 120)
        _psql(cluster, f"CREATE ROLE dockyard LOGIN PASSWORD '{DOCKYARD_DB_PASSWORD}'")
        _psql(cluster, "CREATE DATABASE dockyard OWNER dockyard")
        # The first replica migrates the schema alone; the others then start together.
        start_dockyard(cluster, cluster.nodes[0])
        cluster.save()
        _wait(
            "the first replica",
            lambda: _get(f"http://127.0.0.1:{cluster.nodes[0].dockyard}/_ping")[0] == 200,
            90,
        )
        for node in cluster.nodes[1:]:
            start_dockyard(cluster, node)
        cluster.save()
        for node in cluster.nodes[1:]:
            _wait(node.name, lambda node=node: _get(f"http://127.0.0.1:{node.dockyard}/_ping")[0] == 200, 90)
        start_haproxy(cluster)
        cluster.save()
        _wait("HAProxy", lambda: _get(f"{cluster.url}/_ping")[0] == 200, 30)
    except BaseException:
        down(directory, purge=False)
        raise
    return cluster


def down(directory: Path, purge: bool) -> None:
    """Stop exactly what `up` started (SIGTERM, then SIGKILL), and remove the directory with --purge."""
    try:
        cluster = Cluster.load(directory)
    except OSError:
        log(f"no cluster in {directory}")
        return
    pids = [cluster.haproxy_pid] if cluster.haproxy_pid else []
    postmasters = [p for p in (postmaster_pid(cluster, n) for n in cluster.nodes) if p]
    for node in cluster.nodes:
        pids += [node.pids[k] for k in ("dockyard", "patroni", "etcd") if k in node.pids]
    for pid in pids:
        _kill_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in [*pids, *postmasters]):
        time.sleep(0.2)
    for pid in pids:
        _kill_group(pid, signal.SIGKILL)
    for pid in postmasters:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    (directory / "cluster.json").unlink(missing_ok=True)
    if purge:
        shutil.rmtree(directory, ignore_errors=True)


def status(cluster: Cluster) -> dict[str, Any]:
    """Processes, database members and replicas, as JSON."""
    members = patroni_members(cluster)
    return {
        "url": cluster.url,
        "haproxy": {"pid": cluster.haproxy_pid, "alive": _alive(cluster.haproxy_pid)},
        "nodes": [
            {
                "name": node.name,
                "processes": {k: {"pid": v, "alive": _alive(v)} for k, v in node.pids.items()},
                "postgres_port": node.postgres,
                "dockyard": f"http://127.0.0.1:{node.dockyard}",
                "ping": _get(f"http://127.0.0.1:{node.dockyard}/_ping")[0],
            }
            for node in cluster.nodes
        ],
        "database": [
            {k: m.get(k) for k in ("name", "role", "state", "lag", "timeline") if k in m} for m in members
        ],
        "quorum": sum(1 for n in cluster.nodes if "etcd" in n.pids and _alive(n.pids["etcd"])) * 2
        > len(cluster.nodes),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: up, down, status, kill-node, start-node."""
    parser = argparse.ArgumentParser(prog="scripts/ha-cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"state directory (default {DEFAULT_DIR})"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start a cluster and print its URL and process ids")
    start.add_argument("--nodes", type=int, choices=(3, 5), default=3)
    start.add_argument("--base-port", type=int, default=15000, help="HAProxy's port; nodes use the next ones")
    stop = commands.add_parser("down", help="stop what `up` started")
    stop.add_argument("--purge", action="store_true", help="also delete the state directory")
    commands.add_parser("status", help="processes, database members and replicas as JSON")
    for name in ("kill-node", "start-node"):
        one = commands.add_parser(name, help=f"{name.replace('-', ' ')} (by index, 0 first)")
        one.add_argument("index", type=int)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root: PostgreSQL runs as the postgres user, started with runuser")
    if args.command == "up":
        cluster = up(args.dir, args.nodes, args.base_port)
        print(json.dumps({"url": cluster.url, "admin_password": ADMIN_PASSWORD, **status(cluster)}, indent=2))
    elif args.command == "down":
        down(args.dir, args.purge)
    else:
        cluster = Cluster.load(args.dir)
        if args.command == "status":
            print(json.dumps(status(cluster), indent=2))
        else:
            node = cluster.nodes[args.index]
            (kill_node if args.command == "kill-node" else start_node)(cluster, node)
            cluster.save()
            print(json.dumps(status(cluster)["nodes"][args.index], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
