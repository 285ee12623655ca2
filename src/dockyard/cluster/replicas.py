"""Replica identity, registration and heartbeats, and what the cluster looks like from here."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from dockyard import __version__
from dockyard.auth.errors import Forbidden
from dockyard.auth.identity import Identity
from dockyard.cluster.patroni import DatabaseCluster, patroni_view
from dockyard.config import Settings
from dockyard.db import cluster as q
from dockyard.db.engine import Database, DatabaseUnavailable

__all__ = ["HEARTBEAT_SECONDS", "ClusterStatus", "Replica", "ReplicaRegistry", "replica_id"]

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
# A replica silent for this long counts as down; after _FORGET_SECONDS it is dropped from the list.
_ALIVE_SECONDS = 3 * HEARTBEAT_SECONDS
_FORGET_SECONDS = 7 * 86400


def replica_id(settings: Settings) -> str:
    """This replica's id: the `replica_id` setting, else host name and port (stable across restarts)."""
    return settings.replica_id or f"{socket.gethostname()}:{settings.listen_port}"


@dataclass(frozen=True)
class Replica:
    """A replica as the cluster sees it."""

    id: str
    address: str
    version: str
    started_at: float
    heartbeat_at: float
    alive: bool


@dataclass(frozen=True)
class ClusterStatus:
    """The replicas, this one's id, whether the database takes writes, and its members (Patroni's view)."""

    replica: str
    replicas: list[Replica]
    database: str
    writable: bool
    database_cluster: DatabaseCluster


class ReplicaRegistry:
    """Registers this replica and keeps its heartbeat; answers what the cluster looks like."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.cluster_settings = settings.cluster
        self.id = replica_id(settings)
        host = settings.listen_host
        self.address = settings.external_url or (
            f"{socket.gethostname() if host in {'', '0.0.0.0', '::'} else host}:{settings.listen_port}"
        )
        self.started_at = time.time()

    def beat(self) -> None:
        """Register, or say this replica is still alive (every worker process of it does)."""
        now = time.time()
        with self.db.write(durable=False) as conn:
            q.beat(conn, self.id, self.address[:255], __version__, self.started_at, now)
            q.forget_silent(conn, now - _FORGET_SECONDS)

    async def run(self) -> None:
        """Beat every HEARTBEAT_SECONDS until cancelled."""
        while True:
            try:
                await run_in_threadpool(self.beat)
            except DatabaseUnavailable as exc:
                log.warning("heartbeat failed: the database is unavailable (%s)", exc)
            except Exception:
                log.exception("heartbeat failed")
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def writable(self) -> bool:
        """Whether writes are possible now (the database answers and takes them)."""
        try:
            with self.db.read() as conn:
                return q.accepts_writes(conn)
        except DatabaseUnavailable:
            return False

    def status(self, identity: Identity) -> ClusterStatus:
        """The cluster's replicas and the database's state (system administrators)."""
        if not identity.is_admin:
            raise Forbidden("only system administrators may see the cluster's status")
        now = time.time()
        with self.db.read() as conn:
            rows = q.all_replicas(conn)
        replicas = [
            Replica(
                r.id,
                r.address,
                r.version,
                r.started_at,
                r.heartbeat_at,
                now - r.heartbeat_at <= _ALIVE_SECONDS,
            )
            for r in rows
        ]
        backend = "sqlite" if self.db.is_sqlite else "postgresql"
        return ClusterStatus(self.id, replicas, backend, self.writable(), patroni_view(self.cluster_settings))
