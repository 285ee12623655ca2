"""The database handle: engine set-up for SQLite and PostgreSQL, transactions, migrations, health."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same in every replica that migrates.
_MIGRATION_LOCK_ID = 0x646F636B


class DatabaseUnavailable(Exception):
    """The database cannot be reached, or refuses writes (no quorum, read-only standby)."""


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and pick the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """One engine; `read()` and `write()` hand out transactions."""

    def __init__(self, url: str, pool_size: int = 8) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            path = make_url(self.url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            kwargs["pool_size"] = pool_size
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            self._configure_sqlite()
        self._migrate_lock = threading.Lock()

    def _configure_sqlite(self) -> None:
        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            # Let us issue BEGIN ourselves, so writers can take the lock up front (BEGIN IMMEDIATE)
            # instead of failing when a read transaction tries to upgrade.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: an acknowledged commit survives power loss, not only a process crash.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: Connection) -> None:
            options = conn.get_execution_options()
            if options.get("dockyard_relaxed", False):
                # Set outside the transaction, as SQLite requires; write() sets FULL back after it.
                conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("dockyard_write", False) else "BEGIN")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise DatabaseUnavailable(str(exc.orig)) from exc

    @contextmanager
    def write(self, durable: bool = True) -> Iterator[Connection]:
        """A write transaction; committed when the block ends without an exception.

        `durable=False` commits without waiting for the disk, for state a crash may lose harmlessly
        (an upload's progress): the commit is visible at once and made durable by the next durable
        one; a crash before that forgets it, and never leaves the database inconsistent.
        """
        try:
            with self.engine.connect() as raw:
                conn = raw.execution_options(dockyard_write=True, dockyard_relaxed=not durable)
                try:
                    with conn.begin():
                        if not durable and not self.is_sqlite:
                            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                        yield conn
                finally:
                    driver = raw.connection.driver_connection
                    if not durable and self.is_sqlite and driver is not None:
                        driver.execute("PRAGMA synchronous=FULL")
        except OperationalError as exc:
            raise DatabaseUnavailable(str(exc.orig)) from exc

    def migrate(self) -> None:
        """Bring the schema to the newest revision. Safe when several replicas start at once."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self._migrate_lock, self.engine.connect() as conn:
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
                conn.commit()
            try:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
                conn.commit()
            finally:
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
                    conn.commit()

    def ping(self) -> None:
        """Raise DatabaseUnavailable unless a trivial query works."""
        with self.read() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
