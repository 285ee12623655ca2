"""Settings administrators change at run time, stored as JSON values by name (shared by every replica), and
beside them the result of the last garbage collection (which every replica's System page shows)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from dockyard.db.schema import system_settings

SCAN_ON_PUSH_DEFAULT = "scan_on_push_default"
# Not a setting: what the last collection removed, when and for whom (content/gc.py).
LAST_COLLECTION = "gc.last_collection"
SETTINGS = frozenset({SCAN_ON_PUSH_DEFAULT})


@dataclass(frozen=True)
class SettingRow:
    """A stored setting: its value, when and by whom it was last set."""

    name: str
    value: Any
    updated_at: float
    updated_by: str | None


def all_settings(conn: Connection) -> dict[str, SettingRow]:
    """Every stored setting by name (a setting never set is absent: its default applies)."""
    rows = conn.execute(select(system_settings))
    return {
        str(row.name): SettingRow(str(row.name), json.loads(row.value), float(row.updated_at), row.updated_by)
        for row in rows
    }


def setting(conn: Connection, name: str) -> SettingRow | None:
    """One stored value by name (None: never stored)."""
    row = conn.execute(select(system_settings).where(system_settings.c.name == name)).first()
    if row is None:
        return None
    return SettingRow(str(row.name), json.loads(row.value), float(row.updated_at), row.updated_by)


def put_setting(conn: Connection, name: str, value: Any, now: float, by: str | None) -> None:
    """Store a setting's value, replacing the previous one."""
    dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = {"value": json.dumps(value), "updated_at": now, "updated_by": by}
    stmt = dialect.insert(system_settings).values(name=name, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[system_settings.c.name], set_=values))


def scan_on_push_default(conn: Connection) -> bool:
    """Whether a new repository scans what is pushed to it when its creator does not say (default: yes)."""
    stmt = select(system_settings.c.value).where(system_settings.c.name == SCAN_ON_PUSH_DEFAULT)
    value = conn.execute(stmt).scalar_one_or_none()
    return True if value is None else json.loads(value) is True
