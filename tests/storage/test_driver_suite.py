"""The contract every storage driver honours (storage/driver.py), run against each driver: the filesystem
and S3 (on moto's server mode, tests/storage/s3_server.py). A new driver adds one entry to DRIVERS."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from s3_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer

from dockyard.storage.driver import FileInfo, PathNotFound, StorageDriver, StorageError
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.s3 import MIN_PART_SIZE, S3Driver, S3Options

# Opens a driver on the same storage each time it is called (as another replica would).
Opener = Callable[[], StorageDriver]


def _filesystem(request: pytest.FixtureRequest, tmp: Path) -> Opener:
    return lambda: FilesystemDriver(tmp / "root")


def _s3(request: pytest.FixtureRequest, tmp: Path) -> Opener:
    server: MotoServer = request.getfixturevalue("moto_server")
    options = S3Options(
        bucket=server.new_bucket(),
        endpoint_url=server.url,
        region=REGION,
        # A prefix, so that the driver's keys and paths are told apart correctly.
        prefix=f"registry-{uuid.uuid4().hex[:8]}/",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        part_size=MIN_PART_SIZE,
    )
    return lambda: S3Driver(options)


DRIVERS: dict[str, Callable[[pytest.FixtureRequest, Path], Opener]] = {"filesystem": _filesystem, "s3": _s3}


@pytest.fixture(params=list(DRIVERS))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens drivers on one fresh, empty storage."""
    return DRIVERS[request.param](request, tmp_path)


@pytest.fixture
def driver(storage: Opener) -> Iterator[StorageDriver]:
    """A driver on a fresh, empty storage."""
    yield storage()


def _put(driver: StorageDriver, path: str, data: bytes) -> None:
    writer = driver.writer(path)
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


def test_writer_continues_across_handles_and_replicas(storage: Opener) -> None:
    """A writer flushes; another one, on another driver instance, continues from its size and state."""
    first = storage().writer("up/data")
    first.write(b"hello ")
    assert first.size == 6
    first.flush()
    state = first.state
    first.close()
    second = storage().writer("up/data", resume_at=6, state=state)
    assert second.size == 6
    second.write(b"world")
    assert second.size == 11
    second.flush()
    state = second.state
    second.close()
    third = storage().writer("up/data", resume_at=11, state=state)
    third.write(b"!")
    third.commit()
    third.close()
    assert _read(storage(), "up/data") == b"hello world!"


def test_resume_drops_what_a_failed_writer_left(driver: StorageDriver) -> None:
    """Bytes written (and flushed) after the state the next writer resumes from do not survive."""
    writer = driver.writer("up/data")
    writer.write(b"recorded")
    writer.flush()
    recorded = writer.state
    writer.write(b"-and-then-garbage")
    writer.flush()
    writer.close()
    again = driver.writer("up/data", resume_at=8, state=recorded)
    assert again.size == 8
    again.write(b"+more")
    again.commit()
    again.close()
    assert _read(driver, "up/data") == b"recorded+more"


def test_resume_across_parts(driver: StorageDriver) -> None:
    """Larger than a part (S3: 5 MiB here): a failed writer's extra part is replaced, not kept."""
    first_bytes = os.urandom(MIN_PART_SIZE + 1000)
    writer = driver.writer("up/big")
    writer.write(first_bytes)
    writer.flush()
    recorded = writer.state
    writer.write(os.urandom(MIN_PART_SIZE + 5))
    writer.flush()
    writer.close()
    again = driver.writer("up/big", resume_at=len(first_bytes), state=recorded)
    rest = os.urandom(MIN_PART_SIZE + 77)
    for start in range(0, len(rest), 1 << 20):
        again.write(rest[start : start + (1 << 20)])
    assert again.size == len(first_bytes) + len(rest)
    again.commit()
    again.close()
    assert driver.stat("up/big").size == len(first_bytes) + len(rest)
    assert _read(driver, "up/big") == first_bytes + rest


def test_unflushed_bytes_are_dropped(driver: StorageDriver) -> None:
    writer = driver.writer("up/data")
    writer.write(b"kept")
    writer.flush()
    state = writer.state
    writer.write(b" lost")
    writer.close()
    again = driver.writer("up/data", resume_at=4, state=state)
    again.commit()
    again.close()
    assert _read(driver, "up/data") == b"kept"


def test_empty_and_rewritten_objects(driver: StorageDriver) -> None:
    _put(driver, "up/data", b"old content")
    empty = driver.writer("up/data")
    assert empty.size == 0
    empty.commit()
    empty.close()
    assert driver.stat("up/data").size == 0
    assert _read(driver, "up/data") == b""


def test_read_a_range(driver: StorageDriver) -> None:
    data = bytes(range(256)) * 64
    _put(driver, "blob", data)
    assert _read_range(driver, "blob", 0, 10) == data[:10]
    assert _read_range(driver, "blob", 100, 5000) == data[100:5100]
    assert _read_range(driver, "blob", len(data) - 3, 3) == data[-3:]
    assert _read_range(driver, "blob", 5, 0) == b""
    chunks = list(driver.read("blob", 1, chunk_size=1000, length=4500))
    assert all(len(chunk) <= 1000 for chunk in chunks)
    assert b"".join(chunks) == data[1:4501]
    with pytest.raises(PathNotFound):
        driver.read("missing", 0, length=5)


def _read_range(driver: StorageDriver, path: str, offset: int, length: int) -> bytes:
    return b"".join(driver.read(path, offset, length=length))


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
