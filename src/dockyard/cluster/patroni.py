"""The database members as Patroni sees them: role, state, replication lag, the leader, and the quorum.

Each configured Patroni REST API (`[cluster] patroni_urls`) is asked for `GET /cluster` in parallel, each
answer awaited `patroni_timeout_seconds` at most and read up to `_MAX_ANSWER_BYTES`. The first member that
answers describes the whole cluster (every member publishes the same view, from etcd); a member that does
not answer is listed as unreachable.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from dockyard.config import ClusterSettings

__all__ = ["DatabaseCluster", "DatabaseMember", "patroni_view"]

log = logging.getLogger(__name__)

_MAX_ANSWER_BYTES = 256 * 1024
_MAX_MEMBERS = 64
NOT_MANAGED = "not managed by Patroni"


@dataclass(frozen=True)
class DatabaseMember:
    """One PostgreSQL member: its role (leader, sync_standby, replica), state (running, streaming...),
    how many bytes of the leader's log it has yet to replay (None when Patroni does not know), and whether
    its own Patroni answered now (None when its REST API is not among the configured URLs)."""

    name: str
    host: str
    role: str
    state: str
    lag_bytes: int | None
    timeline: int | None
    reachable: bool | None


@dataclass(frozen=True)
class DatabaseCluster:
    """What Patroni says: `managed` False when no Patroni URL is configured (then `note` says so);
    `quorum` None when no member answered."""

    managed: bool
    members: list[DatabaseMember] = field(default_factory=list)
    leader: str | None = None
    quorum: bool | None = None
    unreachable: list[str] = field(default_factory=list)
    note: str = ""


def patroni_view(settings: ClusterSettings) -> DatabaseCluster:
    """Ask the configured Patroni REST APIs what the database cluster looks like."""
    urls = settings.patroni_urls
    if not urls:
        return DatabaseCluster(managed=False, note=NOT_MANAGED)
    with (
        httpx.Client(timeout=settings.patroni_timeout_seconds, follow_redirects=False) as http,
        ThreadPoolExecutor(max_workers=len(urls)) as pool,
    ):
        answers = list(pool.map(lambda url: _ask(http, url), urls))
    unreachable = [url for url, answer in zip(urls, answers, strict=True) if answer is None]
    described = next((answer for answer in answers if answer is not None), None)
    if described is None:
        return DatabaseCluster(managed=True, unreachable=unreachable, note="no Patroni member answered")
    answered = {_netloc(url): answer is not None for url, answer in zip(urls, answers, strict=True)}
    members = [
        _member(raw, answered) for raw in described.get("members", [])[:_MAX_MEMBERS] if isinstance(raw, dict)
    ]
    # Without etcd's quorum the survivors keep showing the last leader they saw, dead or not: a leader
    # counts only while its own Patroni answers (a live leader that loses etcd demotes itself).
    leader = next(
        (m.name for m in members if m.role in {"leader", "standby_leader"} and m.reachable is not False),
        None,
    )
    return DatabaseCluster(
        managed=True, members=members, leader=leader, quorum=leader is not None, unreachable=unreachable
    )


def _ask(http: httpx.Client, url: str) -> dict[str, Any] | None:
    """The JSON of `GET {url}/cluster`, or None when the member does not answer properly."""
    try:
        with http.stream("GET", f"{url}/cluster") as answer:
            if answer.status_code != 200:
                return None
            body = b""
            for chunk in answer.iter_bytes():
                body += chunk
                if len(body) > _MAX_ANSWER_BYTES:
                    return None
        found = json.loads(body)
    except (httpx.HTTPError, ValueError) as exc:
        log.info("Patroni at %s did not answer: %s", url, exc)
        return None
    return found if isinstance(found, dict) else None


def _netloc(url: str) -> str:
    return httpx.URL(url).netloc.decode("ascii", "replace").lower()


def _member(raw: dict[str, Any], answered: dict[str, bool]) -> DatabaseMember:
    lag = raw.get("lag")
    timeline = raw.get("timeline")
    api_url = raw.get("api_url")
    reachable = None
    if isinstance(api_url, str):
        try:
            reachable = answered.get(_netloc(api_url))
        except httpx.InvalidURL:
            reachable = None
    return DatabaseMember(
        name=str(raw.get("name", ""))[:128],
        host=f"{raw.get('host', '')}:{raw.get('port', '')}"[:256],
        role=str(raw.get("role", ""))[:32],
        state=str(raw.get("state", ""))[:32],
        # Patroni gives the lag in bytes, or "unknown".
        lag_bytes=lag if isinstance(lag, int) and not isinstance(lag, bool) else None,
        timeline=timeline if isinstance(timeline, int) and not isinstance(timeline, bool) else None,
        reachable=reachable,
    )
