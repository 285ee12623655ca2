"""GET /cluster: the replicas, whether the database takes writes, and its members (system administrators)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel

from dockyard.api.deps import Ctx, User
from dockyard.api.errors import documented
from dockyard.api.models import Timestamp

router = APIRouter(tags=["cluster"], responses=documented())


class ReplicaOut(BaseModel):
    """One replica: where it listens, what it runs, when it last said it was alive."""

    id: str
    address: str
    version: str
    started_at: Timestamp
    last_heartbeat: Timestamp
    alive: bool


class DatabaseMemberOut(BaseModel):
    """One PostgreSQL member as Patroni reports it."""

    name: str
    host: str
    role: str
    state: str
    lag_bytes: int | None
    timeline: int | None
    reachable: bool | None


class DatabaseClusterOut(BaseModel):
    """The database members, their leader, and whether a quorum holds (Patroni's view). `managed` is
    false, with `note` "not managed by Patroni", when no Patroni URL is configured; `quorum` is null when
    no member answered."""

    managed: bool
    members: list[DatabaseMemberOut]
    leader: str | None
    quorum: bool | None
    unreachable: list[str]
    note: str


class ClusterOut(BaseModel):
    """The cluster as this replica sees it."""

    replica: str
    replicas: list[ReplicaOut]
    database: str
    writable: bool
    database_cluster: DatabaseClusterOut


def _time(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@router.get("/cluster", response_model=ClusterOut, responses=documented(403))
def cluster_status(ctx: Ctx, identity: User) -> ClusterOut:
    """The replicas, their heartbeats, whether writes are possible now, and the database members with
    their role, state and replication lag (from Patroni, when configured)."""
    found = ctx.cluster.status(identity)
    return ClusterOut(
        replica=found.replica,
        replicas=[
            ReplicaOut(
                id=r.id,
                address=r.address,
                version=r.version,
                started_at=_time(r.started_at),
                last_heartbeat=_time(r.heartbeat_at),
                alive=r.alive,
            )
            for r in found.replicas
        ],
        database=found.database,
        writable=found.writable,
        database_cluster=DatabaseClusterOut.model_validate(asdict(found.database_cluster)),
    )
