"""The filesystem driver's own safeguard beyond the contract: `exclusive` writers take flock(2), so two
requests of one node never interleave an upload's bytes even if the database lease were lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.storage.driver import PathBusy
from dockyard.storage.filesystem import FilesystemDriver


def test_one_exclusive_writer_at_a_time(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path / "root")
    first = driver.writer("up/data", exclusive=True)
    first.write(b"first")
    with pytest.raises(PathBusy):
        driver.writer("up/data", exclusive=True)
    first.commit()
    first.close()
    # The refused writer changed nothing.
    assert b"".join(driver.read("up/data")) == b"first"
    second = driver.writer("up/data", resume_at=5, exclusive=True)
    second.write(b"+second")
    second.commit()
    second.close()
    assert b"".join(driver.read("up/data")) == b"first+second"
    # Other objects are independent.
    third = driver.writer("up/other", exclusive=True)
    fourth = driver.writer("up/another", exclusive=True)
    third.close()
    fourth.close()
