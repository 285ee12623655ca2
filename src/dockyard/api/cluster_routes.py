"""GET /cluster: the replicas and whether the database takes writes (system administrators)."""

from __future__ import annotations

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


class ClusterOut(BaseModel):
    """The cluster as this replica sees it."""

    replica: str
    replicas: list[ReplicaOut]
    database: str
    writable: bool


def _time(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@router.get("/cluster", response_model=ClusterOut, responses=documented(403))
def cluster_status(ctx: Ctx, identity: User) -> ClusterOut:
    """The replicas, their heartbeats, and whether writes are possible now."""
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
    )
