"""The audit log: who did what, when, from where, and whether it worked. Never holds a secret.

The domain service that makes a change records it, with its real outcome: inside its own transaction where
it can (`add`), else right after (`record`). The actor is the caller's Identity, which carries the address
the surface saw; `CLI` names the trusted command line.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sqlalchemy.engine import Connection

from dockyard.auth import policy as p
from dockyard.auth.errors import Forbidden, InvalidInput
from dockyard.auth.identity import Identity
from dockyard.db import audit as q
from dockyard.db.engine import Database, DatabaseReadOnly, DatabaseUnavailable
from dockyard.observability import metrics

log = logging.getLogger("dockyard.audit")

SUCCESS = "success"
FAILURE = "failure"
DENIED = "denied"
# The actor of what the command line does (services take `actor=None` for it).
CLI = "cli"

Actor = Identity | str | None


class AuditLog:
    """Records security-relevant events and prunes them after the retention period."""

    def __init__(self, db: Database, retention_days: int) -> None:
        self.db = db
        self.retention_seconds = retention_days * 86400

    def record(
        self,
        action: str,
        *,
        actor: Actor = None,
        address: str | None = None,
        target: str | None = None,
        outcome: str = SUCCESS,
        durable: bool = True,
        **detail: Any,
    ) -> None:
        """Append one event in a transaction of its own. A failure to record is logged, never raised into
        the request.

        `durable=False` for an event a durable write follows soon (a pull): that write's flush of the
        database log carries this event to the disk too, so it need not wait on its own.
        """
        try:
            with self.db.write(durable=durable) as conn:
                self.add(conn, action, actor=actor, address=address, target=target, outcome=outcome, **detail)
        except DatabaseReadOnly:
            # Without a quorum a login or pull still goes ahead; only its audit row is left out.
            metrics.write_skipped("audit")
            log.warning(
                "audit event %s by %s not recorded: the database takes no writes", action, _name(actor)
            )
        except DatabaseUnavailable:
            log.exception("could not record audit event %s by %s", action, _name(actor))

    def add(
        self,
        conn: Connection,
        action: str,
        *,
        actor: Actor = None,
        address: str | None = None,
        target: str | None = None,
        outcome: str = SUCCESS,
        **detail: Any,
    ) -> None:
        """Append one event inside the caller's transaction: it commits with the change it describes, or
        not at all. `address` defaults to the one the actor's request came from."""
        name = _name(actor)
        if isinstance(actor, Identity):
            address = address or actor.address
            if actor.token_id is not None:
                detail.setdefault("access_token_id", actor.token_id)
        q.insert_event(
            conn,
            time.time(),
            (name or None) and name[:64],
            address[:64] if address else None,
            action[:64],
            target[:300] if target else None,
            outcome,
            json.dumps(detail, default=str, sort_keys=True),
        )
        log.info(
            "audit: %s %s by %s from %s: %s", action, target or "-", name or "anonymous", address, outcome
        )

    def events(
        self,
        actor: Identity,
        *,
        limit: int = 100,
        before_id: int | None = None,
        action: str | None = None,
        who: str | None = None,
        since: float | None = None,
        until: float | None = None,
        repository: str | None = None,
    ) -> list[q.AuditRow]:
        """Newest first (system administrators only), optionally from `since` to before `until` and about
        one repository."""
        if not p.may_administer(actor) and not (actor.is_admin and actor.read_only):
            raise Forbidden("only system administrators may read the audit log")
        if since is not None and until is not None and since >= until:
            raise InvalidInput("the start of the time range must come before its end", "from")
        with self.db.read() as conn:
            return q.list_events(conn, limit, before_id, action, who, since, until, repository)

    def prune(self, now: float | None = None) -> int:
        """Delete events older than the retention period; returns how many went."""
        cutoff = (now if now is not None else time.time()) - self.retention_seconds
        with self.db.write() as conn:
            return q.delete_before(conn, cutoff)


def _name(actor: Actor) -> str | None:
    return actor if isinstance(actor, str) or actor is None else actor.name
