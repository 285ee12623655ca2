"""Alembic environment: runs on the connection Dockyard hands over, never on a URL of its own."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from dockyard.db.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("migrations run through dockyard.db.engine.Database.migrate")

# render_as_batch lets ALTER-style changes work on SQLite too.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
