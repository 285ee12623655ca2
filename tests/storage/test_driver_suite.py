"""The contract every storage driver honours. A new driver (S3-compatible, say) adds one entry to DRIVERS."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.storage.driver import FileInfo, PathBusy, PathNotFound, StorageDriver, StorageError
from dockyard.storage.filesystem import FilesystemDriver

DriverFactory = Callable[[Path], StorageDriver]

DRIVERS: dict[str, DriverFactory] = {
    "filesystem": lambda tmp: FilesystemDriver(tmp / "root"),
}


@pytest.fixture(params=list(DRIVERS))
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageDriver]:
    """A fresh, empty driver instance."""
    yield DRIVERS[request.param](tmp_path)


def _put(driver: StorageDriver, path: str, data: bytes) -> None:
    writer = driver.writer(path, resume_at=0)
    try:
        writer.write(data)
        writer.commit()
    finally:
        writer.close()


def _read(driver: StorageDriver, path: str, offset: int = 0, chunk_size: int = 1 << 20) -> bytes:
    return b"".join(driver.read(path, offset, chunk_size))


def test_stat(driver: StorageDriver) -> None:
    _put(driver, "a/b/c", b"12345")
    info = driver.stat("a/b/c")
    assert info.path == "a/b/c"
    assert info.size == 5
    assert time.time() - 60 < info.modified <= time.time() + 1
    with pytest.raises(PathNotFound):
        driver.stat("a/b/missing")
    with pytest.raises(PathNotFound):
        driver.stat("nothing/at/all")


def test_read_with_offset_and_chunks(driver: StorageDriver) -> None:
    data = bytes(range(256)) * 100
    _put(driver, "blob", data)
    assert _read(driver, "blob") == data
    assert _read(driver, "blob", 1000) == data[1000:]
    assert _read(driver, "blob", len(data)) == b""
    chunks = list(driver.read("blob", 10, chunk_size=4096))
    assert all(len(chunk) <= 4096 for chunk in chunks)
    assert len(chunks) > 1
    assert b"".join(chunks) == data[10:]
    with pytest.raises(PathNotFound):
        _read(driver, "missing")


def test_writer_appends_across_handles(driver: StorageDriver) -> None:
    first = driver.writer("up/data", resume_at=0)
    first.write(b"hello ")
    assert first.size == 6
    first.commit()
    first.close()
    second = driver.writer("up/data", resume_at=6)
    assert second.size == 6
    second.write(b"world")
    assert second.size == 11
    second.commit()
    second.close()
    assert _read(driver, "up/data") == b"hello world"
    # Without resume_at, appending continues at the end.
    third = driver.writer("up/data")
    assert third.size == 11
    third.write(b"!")
    third.commit()
    third.close()
    assert _read(driver, "up/data") == b"hello world!"


def test_resume_at_truncates_what_a_crash_left(driver: StorageDriver) -> None:
    _put(driver, "up/data", b"recorded-and-then-garbage")
    writer = driver.writer("up/data", resume_at=8)
    assert writer.size == 8
    writer.write(b"+more")
    writer.commit()
    writer.close()
    assert _read(driver, "up/data") == b"recorded+more"
    empty = driver.writer("up/data", resume_at=0)
    assert empty.size == 0
    empty.commit()
    empty.close()
    assert driver.stat("up/data").size == 0


def test_move_is_atomic_and_replaces(driver: StorageDriver) -> None:
    _put(driver, "uploads/1/data", b"new bytes")
    _put(driver, "blobs/x", b"old")
    driver.move("uploads/1/data", "blobs/x")
    assert _read(driver, "blobs/x") == b"new bytes"
    with pytest.raises(PathNotFound):
        driver.stat("uploads/1/data")
    driver.move("blobs/x", "deep/new/dir/x")
    assert _read(driver, "deep/new/dir/x") == b"new bytes"
    with pytest.raises(PathNotFound):
        driver.move("no/such/source", "blobs/y")


def test_delete(driver: StorageDriver) -> None:
    _put(driver, "tree/a/1", b"1")
    _put(driver, "tree/a/2", b"2")
    _put(driver, "tree/b", b"3")
    _put(driver, "keep/c", b"4")
    driver.delete("tree/a/1")
    with pytest.raises(PathNotFound):
        driver.stat("tree/a/1")
    driver.delete("tree")
    for path in ("tree/a/2", "tree/b"):
        with pytest.raises(PathNotFound):
            driver.stat(path)
    assert list(driver.walk("tree")) == []
    driver.delete("tree")
    driver.delete("never/existed")
    assert _read(driver, "keep/c") == b"4"


def test_walk(driver: StorageDriver) -> None:
    files = {"blobs/sha256/ab/abc": b"1", "blobs/sha256/cd/cde": b"22", "blobs/sha512/ef/efg": b"333"}
    for path, data in files.items():
        _put(driver, path, data)
    _put(driver, "uploads/u/data", b"x")
    found = {info.path: info for info in driver.walk("blobs")}
    assert set(found) == set(files)
    for path, data in files.items():
        assert isinstance(found[path], FileInfo)
        assert found[path].size == len(data)
    assert {i.path for i in driver.walk("blobs/sha256")} == {"blobs/sha256/ab/abc", "blobs/sha256/cd/cde"}
    assert list(driver.walk("nothing")) == []


@pytest.mark.parametrize("path", ["..", "../x", "a/../../x", "a/./b", "", "/", "a/.."])
def test_invalid_paths_rejected(driver: StorageDriver, tmp_path: Path, path: str) -> None:
    outside = tmp_path / "x"
    outside.write_bytes(b"outside")
    operations: list[Callable[[], object]] = [
        lambda: driver.stat(path),
        lambda: _read(driver, path),
        lambda: driver.writer(path, resume_at=0),
        lambda: driver.move(path, "a/b"),
        lambda: driver.move("a/b", path),
        lambda: driver.delete(path),
        lambda: list(driver.walk(path)),
    ]
    for operation in operations:
        with pytest.raises(StorageError) as caught:
            operation()
        assert not isinstance(caught.value, PathNotFound) or path in {"", "/"}
    assert outside.read_bytes() == b"outside"


def test_move_makes_the_destination_new(driver: StorageDriver) -> None:
    """After a move the object counts as written now (as a copy would on object stores): age-based
    clean-ups must not mistake a just-moved object for an old one."""
    _put(driver, "uploads/old/data", b"old bytes")
    local = driver.local_file("uploads/old/data")
    if local is not None:
        os.utime(local, (time.time() - 7200, time.time() - 7200))
    before = time.time()
    driver.move("uploads/old/data", "blobs/new")
    assert driver.stat("blobs/new").modified >= before - 1


def test_one_writer_at_a_time(driver: StorageDriver) -> None:
    """A second exclusive writer is refused while the first holds the object (it would cut or interleave
    its bytes)."""
    first = driver.writer("up/data", resume_at=0, exclusive=True)
    first.write(b"first")
    with pytest.raises(PathBusy):
        driver.writer("up/data", resume_at=0, exclusive=True)
    first.commit()
    first.close()
    # The refused writer changed nothing.
    assert _read(driver, "up/data") == b"first"
    second = driver.writer("up/data", resume_at=5, exclusive=True)
    second.write(b"+second")
    second.commit()
    second.close()
    assert _read(driver, "up/data") == b"first+second"
    # Other objects are independent.
    third = driver.writer("up/other", resume_at=0, exclusive=True)
    fourth = driver.writer("up/another", resume_at=0, exclusive=True)
    third.close()
    fourth.close()


def test_flushed_bytes_are_readable_while_the_writer_stays_open(driver: StorageDriver) -> None:
    writer = driver.writer("uploads/flushed/data", resume_at=0)
    try:
        writer.write(b"first part ")
        writer.flush()
        assert _read(driver, "uploads/flushed/data") == b"first part "
        writer.write(b"second part")
        writer.flush()
        assert _read(driver, "uploads/flushed/data") == b"first part second part"
        assert writer.size == len(b"first part second part")
    finally:
        writer.close()
