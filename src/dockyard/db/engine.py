"""The database handle: engine set-up for SQLite and PostgreSQL, transactions, migrations, health."""

from __future__ import annotations

import logging
import math
import os
import select
import sqlite3
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Select, create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InvalidRequestError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

from dockyard.db.writer_gate import WriterGate
from dockyard.observability import metrics

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same in every replica that migrates.
_MIGRATION_LOCK_ID = 0x646F636B
# (SQL, parameter names (in order, for SQLite), row type, values of the parameters the compiler added
# itself, such as SQLite's OFFSET after a bound LIMIT) of a statement compiled for Database.quick_rows.
_QuickStatement = tuple[str, tuple[str, ...], Any, dict[str, Any]]
# How long a SQLite writer waits for the lock before the database counts as unavailable.
_BUSY_SECONDS = 30


class DatabaseUnavailable(Exception):
    """The database cannot be reached, or refuses writes (no quorum, read-only standby)."""


class DatabaseReadOnly(DatabaseUnavailable):
    """Members answer, but none accepts writes: the cluster has no quorum (reads still work)."""

    def __init__(self) -> None:
        super().__init__("read-only: the database has no quorum")


def _any_member_url(url: str) -> str | None:
    """For a PostgreSQL URL that asks for the writable member (target_session_attrs=read-write), the same
    URL accepting any member, standbys included; None for any other URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or parsed.query.get("target_session_attrs") != "read-write":
        return None
    return parsed.update_query_dict({"target_session_attrs": "any"}).render_as_string(hide_password=False)


class TransactionCut(DatabaseUnavailable):
    """A failover cut a write transaction (the connection lost, the server shutting down, the member no
    longer the leader) or it lost a serialization conflict; it may or may not have been committed if the
    cut came during COMMIT. Running it again is safe for idempotent work (`Database.write_retrying`)."""


# SQLSTATEs a failover causes mid-transaction: admin_shutdown, crash_shutdown, cannot_connect_now, and
# read_only_sql_transaction (the member was demoted under a pooled connection); class 08 is "connection
# exception". Serialization failures and deadlocks are the ordinary retryable conflicts.
_FAILOVER_STATES = frozenset({"57P01", "57P02", "57P03", "25006"})
_CONNECTION_CLASS = "08"
_SERIALIZATION_STATES = frozenset({"40001", "40P01"})
# `write_retrying`: total time for all attempts of one transaction, and the pauses between them.
RETRY_SECONDS = 5.0
# After the writable member could not be reached, reads go straight to any member for this long: on a real
# partition each attempt costs the URL's connect_timeout, which every pull would otherwise pay.
WRITER_RECHECK_SECONDS = 2.0
_RETRY_FIRST_PAUSE = 0.05
_RETRY_MAX_PAUSE = 1.0
T = TypeVar("T")


class DatabaseFull(DatabaseUnavailable):
    """The database has no room left on its disk (SQLITE_FULL, PostgreSQL's disk_full); the failed
    transaction was rolled back, and writes work again once space is freed."""


# SQLITE_FULL; PostgreSQL's SQLSTATE for disk_full.
_SQLITE_FULL = 13
_PG_DISK_FULL = "53100"


def _unavailable(exc: OperationalError) -> DatabaseUnavailable:
    """The error to raise for a failed statement or commit: DatabaseFull when the disk is full."""
    orig = exc.orig
    if (
        getattr(orig, "sqlite_errorcode", None) == _SQLITE_FULL
        or getattr(orig, "sqlstate", None) == _PG_DISK_FULL
    ):
        return DatabaseFull(str(orig))
    return DatabaseUnavailable(str(orig))


def _check_on_checkout(engine: Engine) -> None:
    """Replace a pooled PostgreSQL connection the server has closed before handing it out, without a round
    trip: an idle connection has nothing to read, so a readable socket means the server sent something
    unasked (its goodbye when it shut down or terminated the backend, or the end of the stream). Only
    then is the connection pinged: alive, it is kept; dead, the pool opens a new one. This replaces
    SQLAlchemy's pool_pre_ping, which cost a round trip per checkout (most of a manifest pull)."""

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
        if dbapi_connection.closed:
            raise DisconnectionError("the connection is closed")
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
        if not poller.poll(0):
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"the server closed the connection: {exc}") from exc


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and pick the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """One engine; `read()` and `write()` hand out transactions."""

    def __init__(self, url: str, pool_size: int = 8, file_mode: int = 0o600) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        self._gate: WriterGate | None = None
        if self.is_sqlite:
            path = make_url(self.url).database
            lock_file = None
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                # Created with its mode before SQLite opens it: SQLite gives its -wal, -shm and -journal
                # files the database file's mode.
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, file_mode))
                lock_file = Path(f"{path}.writer-lock")
            self._gate = WriterGate(lock_file, _BUSY_SECONDS, file_mode)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": _BUSY_SECONDS}
            kwargs["pool_size"] = pool_size
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
        self.engine: Engine = create_engine(self.url, **kwargs)
        # Without a writable member (a cluster without quorum), reads go to any member that answers, so
        # pulls keep working; writes are refused with DatabaseReadOnly.
        standby_url = _any_member_url(self.url)
        self._standby: Engine | None = None
        if standby_url is not None:
            self._standby = create_engine(standby_url, pool_size=2, max_overflow=pool_size)
        if self.is_sqlite:
            self._configure_sqlite()
        else:
            for engine in (self.engine, self._standby):
                if engine is not None:
                    _check_on_checkout(engine)
        self._writer_missed_at = -math.inf
        self._migrate_lock = threading.Lock()
        self._quick_statements: dict[Select[Any], _QuickStatement] = {}
        self._quick_local = threading.local()
        self._quick_lock = threading.Lock()
        self._quick_connections: list[sqlite3.Connection] = []

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
            cursor.execute(f"PRAGMA busy_timeout={_BUSY_SECONDS * 1000}")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: Connection) -> None:
            options = conn.get_execution_options()
            # Straight to the driver: these statements return nothing, and SQLAlchemy's execution path
            # cost more than the query on every manifest pull.
            driver = conn.connection.driver_connection
            assert driver is not None
            if options.get("dockyard_relaxed", False):
                # Set outside the transaction, as SQLite requires; write() sets FULL back after it.
                driver.execute("PRAGMA synchronous=NORMAL")
            driver.execute("BEGIN IMMEDIATE" if options.get("dockyard_write", False) else "BEGIN")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction: on the writable member, or on any member when none is writable (and, for
        WRITER_RECHECK_SECONDS after that was found, on any member straight away)."""
        try:
            with self._member() as conn, conn.begin():
                yield conn
        except OperationalError as exc:
            raise DatabaseUnavailable(str(exc.orig)) from exc

    @contextmanager
    def _member(self) -> Iterator[Connection]:
        """A pooled connection, no transaction begun, to the member `read()` reads from."""
        recently_missed = time.monotonic() - self._writer_missed_at < WRITER_RECHECK_SECONDS
        if self._standby is not None and recently_missed:
            conn = self._standby.connect()
        else:
            try:
                conn = self.engine.connect()
            except OperationalError:
                if self._standby is None:
                    raise
                self._writer_missed_at = time.monotonic()
                conn = self._standby.connect()
        with conn:
            yield conn

    def _refusal(self, exc: OperationalError) -> DatabaseUnavailable:
        """Why a write failed: a full disk; no quorum when another member still answers; else unreachable."""
        refusal = _unavailable(exc)
        if isinstance(refusal, DatabaseFull):
            return refusal
        if self._standby is not None:
            try:
                with self._standby.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
            except OperationalError:
                pass
            else:
                return DatabaseReadOnly()
        return refusal

    @contextmanager
    def write(self, durable: bool = True) -> Iterator[Connection]:
        """A write transaction; committed when the block ends without an exception.

        `durable=False` commits without waiting for the disk, for state a crash may lose harmlessly
        (an upload's progress): the commit is visible at once and made durable by the next durable
        one; a crash before that forgets it, and never leaves the database inconsistent.

        Raises TransactionCut when a failover cut the transaction (see `write_retrying`), DatabaseReadOnly
        when no member takes writes, DatabaseUnavailable when none answers.
        """
        with ExitStack() as stack:
            try:
                if self._gate is not None:
                    stack.enter_context(self._gate.hold())
                raw = stack.enter_context(self.engine.connect())
            except OperationalError as exc:
                raise self._refusal(exc) from exc
            except TimeoutError as exc:
                raise DatabaseUnavailable(str(exc)) from exc
            conn = raw.execution_options(dockyard_write=True, dockyard_relaxed=not durable)
            try:
                with conn.begin():
                    if not durable and not self.is_sqlite:
                        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                    yield conn
            except InvalidRequestError as exc:
                # A statement failed on a connection lost mid-transaction and the block went on with it
                # (PendingRollbackError at COMMIT): the transaction was cut all the same.
                if raw.invalidated:
                    raise TransactionCut("the database failed over during the transaction") from exc
                raise
            except DBAPIError as exc:
                cut = self._cut(exc)
                if cut is not None:
                    # A demoted leader still answers: a new connection finds the writable member.
                    if not raw.invalidated:
                        raw.invalidate()
                    raise cut from exc
                if isinstance(exc, OperationalError):
                    raise self._refusal(exc) from exc
                raise
            finally:
                if not durable and self.is_sqlite and not raw.invalidated:
                    driver = raw.connection.driver_connection
                    if driver is not None:
                        driver.execute("PRAGMA synchronous=FULL")

    def _cut(self, exc: DBAPIError) -> TransactionCut | None:
        """The TransactionCut for an error a failover causes in a transaction already begun, else None."""
        if self.is_sqlite:
            return None
        state = getattr(exc.orig, "sqlstate", None)
        if state in _SERIALIZATION_STATES:
            return TransactionCut("the transaction conflicted with another one")
        if (
            exc.connection_invalidated
            or state in _FAILOVER_STATES
            or (state or "").startswith(_CONNECTION_CLASS)
            or (state is None and isinstance(exc, OperationalError))
        ):
            return TransactionCut("the database failed over during the transaction")
        return None

    def write_retrying(self, action: Callable[[Connection], T], durable: bool = True) -> T:
        """`action` in a write transaction, run again when a failover cuts it (TransactionCut), with a
        growing pause, for at most RETRY_SECONDS in all; then the last TransactionCut is raised.

        Only for an idempotent `action`: a cut during COMMIT leaves unknown whether it was committed, so
        running it again must end in the same state either way (a manifest push: the same rows, the same
        tag). Other errors, and a refusal to connect (no writable member), are raised at once.
        """
        deadline = time.monotonic() + RETRY_SECONDS
        pause = _RETRY_FIRST_PAUSE
        while True:
            try:
                with self.write(durable) as conn:
                    return action(conn)
            except TransactionCut as exc:
                if time.monotonic() + pause >= deadline:
                    metrics.transaction_retried("gave_up")
                    raise
                metrics.transaction_retried("retried")
                log.warning("%s; running it again in %.2f s", exc, pause)
                time.sleep(pause)
                pause = min(pause * 2, _RETRY_MAX_PAUSE)

    def write_if_possible(
        self, what: str, action: Callable[[Connection], object], durable: bool = True
    ) -> bool:
        """Run `action` in a write transaction, or leave it out when no member takes writes (no quorum):
        for bookkeeping a request may go without (a "last used" time, a password rehash). `what` names it
        in the `dockyard_db_writes_skipped` metric. Returns whether it ran."""
        try:
            with self.write(durable) as conn:
                action(conn)
        except DatabaseReadOnly:
            metrics.write_skipped(what)
            log.info("%s not recorded: the database takes no writes", what)
            return False
        return True

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to the newest revision (or to `revision`, as a restore needs). Safe when several
        replicas start at once.

        Without a writable member (no quorum) a replica still starts when the schema is already current,
        to serve pulls; otherwise it raises DatabaseReadOnly."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            self._upgrade(config, revision)
        except OperationalError as exc:
            refusal = self._refusal(exc)
            current = revision == "head" and isinstance(refusal, DatabaseReadOnly)
            if not current or not self._schema_current(config):
                raise refusal from exc
            log.warning("the database takes no writes (no quorum); its schema is current: serving reads")

    def _upgrade(self, config: Config, revision: str) -> None:
        with self._migrate_lock, self.engine.connect() as conn:
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
                conn.commit()
            try:
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
                conn.commit()
            finally:
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
                    conn.commit()

    def _schema_current(self, config: Config) -> bool:
        """Whether a standby's schema is at the newest revision."""
        assert self._standby is not None
        with self._standby.connect() as conn:
            found = set(MigrationContext.configure(conn).get_current_heads())
        return found == set(ScriptDirectory.from_config(config).get_heads())

    def ping(self) -> None:
        """Raise DatabaseUnavailable unless a trivial query works."""
        with self.read() as conn:
            conn.execute(text("SELECT 1"))

    def quick_rows(self, statement: Select[Any], params: dict[str, Any]) -> list[Any]:
        """The rows of one prebuilt SELECT, read without a transaction around it.

        On SQLite the statement is compiled once and run through the driver on this thread's own
        read-only connection in autocommit mode, where one statement reads one consistent snapshot:
        about 7 µs against 95 µs for a SQLAlchemy read transaction, which was most of a manifest pull.
        On PostgreSQL it runs in autocommit on a pooled connection (of the member `read()` would use):
        one round trip instead of BEGIN, SELECT and COMMIT; a connection found dead is replaced and the
        statement run once more, as a read can safely be. Rows have the statement's column names as
        attributes. Only for statements whose columns need no conversion (integers, text, bytes).
        """
        if not self.is_sqlite:
            return self._autocommit_rows(statement, params)
        sql, order, row_type, added = self._quick_statement(statement)
        try:
            values = [params[key] if key in params else added[key] for key in order]
            cursor = self._quick_connection().execute(sql, values)
            return [row_type(*values) for values in cursor.fetchall()]
        except sqlite3.OperationalError as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    def _autocommit_rows(self, statement: Select[Any], params: dict[str, Any]) -> list[Any]:
        sql, names, row_type, added = self._quick_statement(statement)
        values = {key: params[key] if key in params else added[key] for key in names}
        driver_error = self.engine.dialect.loaded_dbapi.OperationalError
        try:
            rows = self._run_in_autocommit(sql, values)
            if rows is None:
                log.info("a pooled connection was lost; reading again on a new one")
                rows = self._run_in_autocommit(sql, values)
        except (OperationalError, driver_error) as exc:
            raise DatabaseUnavailable(str(getattr(exc, "orig", exc))) from exc
        if rows is None:
            raise DatabaseUnavailable("the database closed the connection")
        return [row_type(*row) for row in rows]

    def _run_in_autocommit(self, sql: str, values: dict[str, Any]) -> list[tuple[Any, ...]] | None:
        """The rows, straight through the driver (SQLAlchemy's execution path cost more than the round
        trip); None when the server had closed the connection, which is then dropped from the pool."""
        with self._member() as conn:
            driver: Any = conn.connection.driver_connection
            driver.autocommit = True
            try:
                with driver.cursor() as cursor:
                    cursor.execute(sql, values)
                    rows: list[tuple[Any, ...]] = cursor.fetchall()
                    return rows
            except self.engine.dialect.loaded_dbapi.Error:
                if not driver.closed:
                    raise
                conn.invalidate()
                return None
            finally:
                if not driver.closed:
                    driver.autocommit = False

    def _quick_statement(self, statement: Select[Any]) -> _QuickStatement:
        found = self._quick_statements.get(statement)
        if found is None:
            compiled = statement.compile(dialect=self.engine.dialect)
            for column in statement.selected_columns:
                if column.type.result_processor(self.engine.dialect, None) is not None:
                    raise ValueError(f"column {column.key} needs conversion: use read()")
            columns = [str(column.key) for column in statement.selected_columns]
            row_type = namedtuple("QuickRow", columns)  # type: ignore[misc]
            added = {key: value for key, value in compiled.params.items() if value is not None}
            # Positional on SQLite (qmark), by name on PostgreSQL (pyformat).
            found = (str(compiled), tuple(compiled.positiontup or compiled.params), row_type, added)
            self._quick_statements[statement] = found
        return found

    def _quick_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._quick_local, "conn", None)
        # A worker forked from the process that opened it must not share it.
        if conn is None or self._quick_local.pid != os.getpid():
            path = make_url(self.url).database or ":memory:"
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA query_only=1")
            self._quick_local.conn, self._quick_local.pid = conn, os.getpid()
            with self._quick_lock:
                self._quick_connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every pooled connection."""
        with self._quick_lock:
            for conn in self._quick_connections:
                conn.close()
            self._quick_connections.clear()
        self._quick_local = threading.local()
        self.engine.dispose()
        if self._standby is not None:
            self._standby.dispose()
        if self._gate is not None:
            self._gate.close()
