"""Queries for the audit log. Each takes an open transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, insert, or_, select
from sqlalchemy.engine import Connection

from dockyard.db.schema import audit_events


@dataclass(frozen=True)
class AuditRow:
    """One recorded event."""

    id: int
    at: float
    actor: str | None
    address: str | None
    action: str
    target: str | None
    outcome: str
    detail: str


def insert_event(
    conn: Connection,
    at: float,
    actor: str | None,
    address: str | None,
    action: str,
    target: str | None,
    outcome: str,
    detail: str,
) -> None:
    """Append an event."""
    conn.execute(
        insert(audit_events).values(
            at=at, actor=actor, address=address, action=action, target=target, outcome=outcome, detail=detail
        )
    )


def list_events(
    conn: Connection,
    limit: int,
    before_id: int | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: float | None = None,
    until: float | None = None,
    repository: str | None = None,
) -> list[AuditRow]:
    """Newest events first, older than `before_id` when given, at or after `since` and before `until`, about
    `repository` (the repository itself, `name:tag` or `name@digest`)."""
    stmt = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
    if since is not None:
        stmt = stmt.where(audit_events.c.at >= since)
    if until is not None:
        stmt = stmt.where(audit_events.c.at < until)
    if repository is not None:
        stmt = stmt.where(about_repository(repository))
    if before_id is not None:
        stmt = stmt.where(audit_events.c.id < before_id)
    if action is not None:
        stmt = stmt.where(audit_events.c.action == action)
    if actor is not None:
        stmt = stmt.where(audit_events.c.actor == actor)
    return [AuditRow(**row) for row in conn.execute(stmt).mappings()]


def about_repository(name: str) -> ColumnElement[bool]:
    """Events whose target is the repository, one of its tags (`name:tag`) or manifests (`name@digest`)."""
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(
        audit_events.c.target == name,
        audit_events.c.target.like(escaped + ":%", escape="\\"),
        audit_events.c.target.like(escaped + "@%", escape="\\"),
    )


def delete_before(conn: Connection, when: float) -> int:
    """Remove events older than `when`; returns how many."""
    return conn.execute(delete(audit_events).where(audit_events.c.at < when)).rowcount
