"""The filesystem driver on a full disk: StorageFull, nothing left open, writes again once space returns."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dockyard.storage.driver import StorageError, StorageFull
from dockyard.storage.filesystem import FilesystemDriver, _failure

MiB = 1 << 20


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_no_space_and_no_quota_are_storage_full(code: int) -> None:
    error = _failure("write", OSError(code, os.strerror(code)))
    assert isinstance(error, StorageFull)
    assert "no space left" in str(error)


@pytest.mark.parametrize("code", [errno.EIO, errno.EACCES, errno.EROFS])
def test_other_failures_are_not_storage_full(code: int) -> None:
    error = _failure("write", OSError(code, os.strerror(code)))
    assert isinstance(error, StorageError) and not isinstance(error, StorageFull)


@pytest.mark.parametrize("step", ["write", "flush", "commit"])
def test_writer_on_a_full_disk(small_disk: Path, step: str) -> None:
    driver = FilesystemDriver(small_disk / "store")
    writer = driver.writer("uploads/u1/data", resume_at=0, exclusive=True)
    with pytest.raises(StorageFull):
        # Python buffers small writes: the disk is found full at the write, the flush or the sync.
        while True:
            writer.write(b"x" * (MiB if step == "write" else 4096))
            if step == "flush":
                writer.flush()
            elif step == "commit":
                writer.commit()
    writer.close()  # never raises, even with bytes it could not write
    # The lock went with the descriptor: another writer can open it, and deleting gives the space back.
    driver.writer("uploads/u1/data", resume_at=0, exclusive=True).close()
    driver.delete("uploads/u1")
    again = driver.writer("uploads/u2/data", resume_at=0, exclusive=True)
    again.write(b"y" * MiB)
    again.commit()
    again.close()
    driver.move("uploads/u2/data", "blobs/sha256/ab/abc")
    assert driver.stat("blobs/sha256/ab/abc").size == MiB
