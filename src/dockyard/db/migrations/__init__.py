"""Alembic migrations, applied at start by `Database.migrate`."""
