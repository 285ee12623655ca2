"""`dockyard cluster`: what the cluster looks like (replicas, heartbeats, whether writes are possible, the
database members from Patroni)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import click

from dockyard.auth.identity import Identity
from dockyard.cli.options import local_services, registry_options
from dockyard.cluster.patroni import DatabaseCluster


@click.group()
def cluster() -> None:
    """Inspect the cluster of replicas sharing this database."""


@cluster.command("status")
@registry_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status(config_file: Path | None, data_dir: Path | None, database_url: str | None, as_json: bool) -> None:
    """The replicas (address, version, last heartbeat, up or down), whether the database takes writes,
    and the database members with role, state and lag, the leader and the quorum (Patroni's view)."""
    with local_services(config_file, data_dir, database_url) as services:
        # Whoever can run this command can read the database: they act as a system administrator.
        found = services.cluster.status(Identity(user_id=0, name="cli", is_admin=True))
    if as_json:
        click.echo(json.dumps(asdict(found), indent=2))
        return
    now = time.time()
    click.echo(f"database: {found.database}, {'writable' if found.writable else 'READ-ONLY'}")
    click.echo(f"replicas: {sum(r.alive for r in found.replicas)} up of {len(found.replicas)}")
    for replica in found.replicas:
        state = "up" if replica.alive else "DOWN"
        click.echo(
            f"  {replica.id}\t{replica.address}\t{replica.version}\t{state}\t"
            f"last heartbeat {now - replica.heartbeat_at:.0f} s ago"
        )
    _echo_database_cluster(found.database_cluster)


def _echo_database_cluster(view: DatabaseCluster) -> None:
    if not view.managed:
        click.echo(f"database members: {view.note}")
        return
    quorum = {True: "holds", False: "LOST (no leader)", None: "unknown"}[view.quorum]
    click.echo(f"database members: {len(view.members)}, leader {view.leader or 'NONE'}, quorum {quorum}")
    if view.note:
        click.echo(f"  {view.note}")
    for member in view.members:
        lag = "?" if member.lag_bytes is None else f"{member.lag_bytes} B"
        seen = {True: "", False: "\tUNREACHABLE", None: ""}[member.reachable]
        click.echo(f"  {member.name}\t{member.host}\t{member.role}\t{member.state}\tlag {lag}{seen}")
    for url in view.unreachable:
        click.echo(f"  unreachable: {url}")
