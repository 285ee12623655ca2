"""Streaming a local file in chunks: from the page cache or the disk, exact sizes, short files."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from dockyard.storage.driver import PathNotFound, StorageError
from dockyard.storage.file_stream import stream_file

CHUNK = 4096


async def _collect(path: Path, size: int, chunk_size: int = CHUNK) -> list[bytes]:
    return [chunk async for chunk in stream_file(path, size, chunk_size)]


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "blob"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_yields_exactly_the_file_in_bounded_chunks(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    chunks = anyio.run(_collect, _write(tmp_path, data), size)
    assert b"".join(chunks) == data
    assert all(0 < len(chunk) <= CHUNK for chunk in chunks)


def test_reads_what_the_page_cache_does_not_hold(tmp_path: Path) -> None:
    data = os.urandom(8 * CHUNK)
    path = _write(tmp_path, data)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        # Drop the file's pages: every read must then wait for the disk (on a thread).
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    assert b"".join(anyio.run(_collect, path, len(data))) == data


def test_stops_at_the_given_size(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK)
    chunks = anyio.run(_collect, _write(tmp_path, data), CHUNK + 10)
    assert b"".join(chunks) == data[: CHUNK + 10]


def test_a_file_shorter_than_recorded_is_an_error(tmp_path: Path) -> None:
    data = os.urandom(CHUNK + 100)
    path = _write(tmp_path, data)
    received: list[bytes] = []

    async def consume() -> None:
        async for chunk in stream_file(path, len(data) + 1, CHUNK):
            received.append(chunk)

    with pytest.raises(StorageError, match="ended at byte"):
        anyio.run(consume)
    assert b"".join(received) == data


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PathNotFound):
        anyio.run(_collect, tmp_path / "absent", 10)
