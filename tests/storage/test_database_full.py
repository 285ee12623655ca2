"""The database on a full disk: DatabaseFull, the transaction undone, and writes resume once space returns."""

from __future__ import annotations

import errno
from pathlib import Path

import psycopg.errors
import pytest
from sqlalchemy import Column, Integer, LargeBinary, MetaData, Table, func, select
from sqlalchemy.exc import OperationalError

from dockyard.db.engine import Database, DatabaseFull, DatabaseUnavailable, _unavailable

MiB = 1 << 20
_metadata = MetaData()
_rows = Table("rows", _metadata, Column("id", Integer, primary_key=True), Column("data", LargeBinary))


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        for block in (MiB, 4096):
            try:
                while True:
                    handle.write(b"\0" * block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def test_sqlite_on_a_full_disk(small_disk: Path) -> None:
    db = Database(f"sqlite:///{small_disk / 'meta.db'}")
    try:
        _metadata.create_all(db.engine)
        with db.write() as conn:
            conn.execute(_rows.insert().values(id=1, data=b"before"))
        filler = _fill(small_disk)
        with pytest.raises(DatabaseFull), db.write() as conn:
            conn.execute(_rows.insert(), [{"id": i, "data": b"x" * 65536} for i in range(2, 200)])
        # Rolled back whole; reads go on.
        with db.read() as conn:
            assert conn.execute(select(func.count()).select_from(_rows)).scalar_one() == 1
        filler.unlink()
        # Same handle, no restart.
        with db.write() as conn:
            conn.execute(_rows.insert(), [{"id": i, "data": b"x" * 65536} for i in range(2, 200)])
        with db.read() as conn:
            assert conn.execute(select(func.count()).select_from(_rows)).scalar_one() == 199
    finally:
        db.close()


def test_postgresql_disk_full_is_database_full() -> None:
    error = OperationalError("COMMIT", None, psycopg.errors.DiskFull("could not extend file"))
    assert isinstance(_unavailable(error), DatabaseFull)


def test_other_database_failures_are_not_database_full() -> None:
    others = (psycopg.errors.AdminShutdown("terminating"), psycopg.errors.ReadOnlySqlTransaction("read only"))
    for orig in others:
        error = _unavailable(OperationalError("COMMIT", None, orig))
        assert isinstance(error, DatabaseUnavailable) and not isinstance(error, DatabaseFull)
