"""advisories keyed by every id they are known by (own id, aliases, upstream)

Imports key new records this way (`scanning.match.index_keys`); this adds the keys to records stored
before, which an import leaves alone while their text is unchanged. The ecosystem of these keys is the
empty string, which no OSV package has.

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

_BATCH = 1000
_MAX_IDS = 32

_advisories = sa.table("advisories", sa.column("id", sa.String), sa.column("record", sa.Text))
_keys = sa.table(
    "advisory_keys",
    sa.column("ecosystem", sa.String),
    sa.column("name", sa.String),
    sa.column("advisory_id", sa.String),
)


def _ids(advisory_id: str, record: str) -> list[str]:
    try:
        document: Any = json.loads(record)
    except ValueError:
        return [advisory_id]
    found = [advisory_id]
    for field in ("aliases", "upstream"):
        values = document.get(field) if isinstance(document, dict) else None
        if isinstance(values, list):
            found.extend(v for v in values if isinstance(v, str) and 0 < len(v) <= 255)
    return list(dict.fromkeys(found))[:_MAX_IDS]


def upgrade() -> None:
    conn = op.get_bind()
    last = ""
    while True:
        # In pages by id, so a large database is never held in memory at once.
        rows = conn.execute(
            sa.select(_advisories.c.id, _advisories.c.record)
            .where(_advisories.c.id > last)
            .order_by(_advisories.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        keys = [
            {"ecosystem": "", "name": vuln_id, "advisory_id": row.id}
            for row in rows
            for vuln_id in _ids(row.id, row.record)
        ]
        conn.execute(sa.insert(_keys), keys)
        last = rows[-1].id


def downgrade() -> None:
    op.execute(sa.delete(_keys).where(_keys.c.ecosystem == ""))
