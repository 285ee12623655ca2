"""Queries for backup and restore: every table read at one snapshot, in batches; rows loaded back into an
empty database in dependency order. Rows travel as lists of JSON values, binary columns as base64."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Column, LargeBinary, MetaData, Table, delete, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from dockyard.db.engine import MIGRATIONS, Database, DatabaseUnavailable
from dockyard.db.schema import accounts, blobs, metadata, repositories

# Rows fetched from the database, and inserted, per round trip: bounds memory whatever the table sizes.
BATCH_ROWS = 500
# A database holding any of these rows is in use: a restore never writes over it.
OCCUPYING_TABLES = (repositories, accounts, blobs)
# State of the processes that were running, meaningless in another deployment: dumped, never restored.
# (An upload's bytes are not in a backup, so its session could not continue either.)
RUNTIME_TABLES = frozenset({"leases", "replicas", "uploads"})
_VERSION_TABLE = "alembic_version"


class RestoreRefused(Exception):
    """The target cannot take the archive (not empty, newer schema, rows that do not fit)."""


@dataclass(frozen=True)
class TableDump:
    """How one table's rows are laid out: its columns in order, the binary ones base64 encoded."""

    name: str
    columns: list[str]
    binary_columns: list[str]


def dump_tables() -> list[Table]:
    """Every table of the schema, parents before children (the order a restore inserts them in)."""
    return list(metadata.sorted_tables)


def layout(table: Table) -> TableDump:
    """The columns a dump of `table` carries."""
    return TableDump(
        table.name,
        [column.name for column in table.columns],
        [column.name for column in table.columns if isinstance(column.type, LargeBinary)],
    )


def _script() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def head_revision() -> str:
    """The newest schema revision this version of Dockyard knows."""
    head = _script().get_current_head()
    assert head is not None
    return head


def known_revisions_up_to(revision: str) -> set[str] | None:
    """`revision` and every revision before it, or None when this version of Dockyard does not know it."""
    # Only a plain revision id: not a symbol ("head"), a prefix or an expression ("0008@head", "-1").
    if not re.fullmatch(r"[0-9A-Za-z_]{1,64}", revision) or revision in {"head", "heads", "base"}:
        return None
    script = _script()
    try:
        found = script.get_revision(revision)
        if found is None or found.revision != revision:
            return None
        return {earlier.revision for earlier in script.walk_revisions(base="base", head=revision)}
    except (CommandError, RevisionError):
        return None


def current_revision(conn: Connection) -> str | None:
    """The schema revision of the database, or None when it has no Dockyard schema."""
    version = Table(_VERSION_TABLE, MetaData(), autoload_with=conn)
    found: str | None = conn.execute(select(version.c.version_num)).scalar_one_or_none()
    return found


@contextmanager
def snapshot(db: Database) -> Iterator[Connection]:
    """One read-only transaction that sees a single consistent state while writers go on: REPEATABLE READ
    on PostgreSQL; on SQLite (WAL) a read transaction, whose snapshot is taken at its first read."""
    try:
        with db.engine.connect() as raw:
            conn = raw
            if not db.is_sqlite:
                conn = raw.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn
    except OperationalError as exc:
        raise DatabaseUnavailable(str(exc.orig)) from exc


def table_batches(conn: Connection, table: Table) -> Iterator[list[list[Any]]]:
    """The table's rows in primary key order, as JSON-ready lists in `layout(table)` column order, in
    batches of BATCH_ROWS (a server-side cursor on PostgreSQL)."""
    binary = [isinstance(column.type, LargeBinary) for column in table.columns]
    result = conn.execution_options(yield_per=BATCH_ROWS).execute(
        select(table).order_by(*table.primary_key.columns)
    )
    for partition in result.partitions():
        yield [
            [_encode(value) if is_binary else value for value, is_binary in zip(row, binary, strict=True)]
            for row in partition
        ]


def _encode(value: Any) -> str | None:
    return None if value is None else base64.b64encode(bytes(value)).decode("ascii")


def occupied(conn: Connection) -> dict[str, int]:
    """Row counts of the tables that make a database in use (repositories, accounts, blobs)."""
    return {
        table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
        for table in OCCUPYING_TABLES
    }


@dataclass(frozen=True)
class TableRows:
    """One table of an archive on its way in: its layout and its rows (consumed once)."""

    dump: TableDump
    rows: Iterable[list[Any]]


def load(db: Database, tables: Iterable[TableRows]) -> dict[str, int]:
    """Insert the archive's tables into an empty database at the archive's revision, in one transaction:
    refuses a database in use, empties the rest (a key or heartbeat a first start left), inserts in
    dependency order and moves PostgreSQL's sequences past the restored ids. Rows inserted per table."""
    counts: dict[str, int] = {}
    try:
        with db.write() as conn:
            in_use = {name: count for name, count in occupied(conn).items() if count}
            if in_use:
                raise RestoreRefused(refusal_for(in_use))
            target = MetaData()
            target.reflect(conn)
            target.remove(target.tables[_VERSION_TABLE])
            for table in reversed(target.sorted_tables):
                conn.execute(delete(table))
            for incoming in tables:
                name = incoming.dump.name
                if name not in target.tables:
                    raise RestoreRefused(f"the archive has a table {name!r} the schema does not know")
                if name in counts:
                    raise RestoreRefused(f"the archive holds the table {name!r} twice")
                counts[name] = _insert(conn, target.tables[name], incoming, skip=name in RUNTIME_TABLES)
            lacking = sorted(set(target.tables) - set(counts))
            if lacking:
                raise RestoreRefused(f"the archive lacks tables of its schema revision: {', '.join(lacking)}")
            if not db.is_sqlite:
                _reset_sequences(conn, target.sorted_tables)
    except DBAPIError as exc:
        # A row breaking a constraint: the archive does not fit this schema (or was edited).
        raise RestoreRefused(f"the archive's rows do not fit the database: {exc.orig}") from exc
    return counts


def refusal_for(in_use: dict[str, int]) -> str:
    """Why a restore will not write into this database."""
    found = ", ".join(f"{count} {name}" for name, count in in_use.items())
    return (
        f"the target database is not empty ({found}): restore only into an empty deployment "
        "(a new data directory, or a new, empty PostgreSQL database)"
    )


def _insert(conn: Connection, table: Table, incoming: TableRows, skip: bool) -> int:
    columns = incoming.dump.columns
    unknown = [name for name in columns if name not in table.columns]
    if unknown or len(set(columns)) != len(columns):
        raise RestoreRefused(f"the archive's columns of {table.name} do not match the schema: {columns[:50]}")
    convert = [_converter(table.name, table.columns[name]) for name in columns]
    if {name for name, column in zip(columns, convert, strict=True) if column is _decode} != set(
        incoming.dump.binary_columns
    ):
        raise RestoreRefused(f"the archive's binary columns of {table.name} do not match the schema")
    statement = insert(table)
    count = 0
    batch: list[dict[str, Any]] = []
    for row in incoming.rows:
        if skip:
            continue
        if len(row) != len(columns):
            raise RestoreRefused(f"a row of {table.name} has {len(row)} values for {len(columns)} columns")
        batch.append({name: check(value) for name, check, value in zip(columns, convert, row, strict=True)})
        if len(batch) == BATCH_ROWS:
            conn.execute(statement, batch)
            count += len(batch)
            batch = []
    if batch:
        conn.execute(statement, batch)
        count += len(batch)
    return count


def _converter(table: str, column: Column[Any]) -> Callable[[Any], Any]:
    """What turns a JSON value of the column back into the value to insert, refusing a value of the wrong
    kind (SQLite would store it anyway)."""
    if isinstance(column.type, LargeBinary):
        return _decode
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return lambda value: value
    accepted: tuple[type, ...] = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(kind, ())

    def check(value: Any) -> Any:
        if value is None or not accepted:
            return value
        if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
            raise RestoreRefused(f"a value of {table}.{column.name} is not of the column's type")
        return value

    return check


def _decode(value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RestoreRefused("a binary value in the archive is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise RestoreRefused("a binary value in the archive is not valid base64") from exc


def _reset_sequences(conn: Connection, tables: Iterable[Table]) -> None:
    """Each serial id's sequence continues after the largest restored id (or starts at 1 when empty)."""
    for table in tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or keys[0].type.python_type is not int:
            continue
        column = keys[0]
        sequence = func.pg_get_serial_sequence(table.name, column.name)
        largest = select(func.max(column)).scalar_subquery()
        conn.execute(
            select(func.setval(sequence, func.coalesce(largest, 1), largest.is_not(None))).where(
                sequence.is_not(None)
            )
        )


def referenced_blobs(db: Database) -> Iterator[list[tuple[str, int]]]:
    """(digest, size) of every blob the metadata records, in batches."""
    last = ""
    while True:
        with db.read() as conn:
            batch = [
                (row.digest, row.size)
                for row in conn.execute(
                    select(blobs.c.digest, blobs.c.size)
                    .where(blobs.c.digest > last)
                    .order_by(blobs.c.digest)
                    .limit(BATCH_ROWS)
                )
            ]
        if not batch:
            return
        yield batch
        last = batch[-1][0]
