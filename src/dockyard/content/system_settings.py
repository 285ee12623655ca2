"""System settings administrators change at run time (stored in the database, shared by every replica):
today the scan-on-push default of new repositories."""

from __future__ import annotations

import time
from dataclasses import dataclass

from dockyard.auth import policy as p
from dockyard.auth.errors import Forbidden
from dockyard.auth.identity import Identity
from dockyard.db import system_settings as q
from dockyard.db.engine import Database
from dockyard.events.audit import AuditLog


@dataclass(frozen=True)
class SystemSettingsView:
    """The settings as they apply now, and who changed them last."""

    scan_on_push_default: bool
    updated_at: float | None
    updated_by: str | None


class SystemSettings:
    """Reads and changes the system settings (system administrators only)."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    def get(self, actor: Identity) -> SystemSettingsView:
        """The settings in force."""
        _require_administrator(actor)
        with self.db.read() as conn:
            stored = q.all_settings(conn)
            default = q.scan_on_push_default(conn)
        changed = [row for name, row in stored.items() if name in q.SETTINGS]
        latest = max(changed, key=lambda row: row.updated_at, default=None)
        return SystemSettingsView(
            scan_on_push_default=default,
            updated_at=latest.updated_at if latest else None,
            updated_by=latest.updated_by if latest else None,
        )

    def update(
        self, actor: Identity, *, scan_on_push_default: bool | None = None, address: str | None = None
    ) -> SystemSettingsView:
        """Change the settings given (None: unchanged), recorded in the audit log."""
        _require_administrator(actor)
        if scan_on_push_default is not None:
            with self.db.write() as conn:
                q.put_setting(conn, q.SCAN_ON_PUSH_DEFAULT, scan_on_push_default, time.time(), actor.name)
            self.audit.record(
                "system.settings",
                actor=actor,
                address=address,
                target=q.SCAN_ON_PUSH_DEFAULT,
                scan_on_push_default=scan_on_push_default,
            )
        return self.get(actor)


def _require_administrator(actor: Identity) -> None:
    if not p.may_administer(actor):
        raise Forbidden("only system administrators may see or change the system settings")
