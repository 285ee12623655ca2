"""Whether a registry's database already exists, found out without creating anything."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from dockyard.db.engine import DatabaseUnavailable, normalise_url


def database_initialised(url: str) -> bool:
    """True when the database at `url` holds a Dockyard schema (a migrations table).

    A SQLite file is only looked at, never created; another database is asked, on one connection
    closed at once. Raises DatabaseUnavailable when the server cannot be reached.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if not path or path == ":memory:" or not Path(path).is_file():
            return False
        # Read-only: opening a SQLite file that is not there would make it.
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return inspect(conn).has_table("alembic_version")
    except OperationalError as exc:
        raise DatabaseUnavailable(str(exc.orig)) from exc
    finally:
        engine.dispose()
